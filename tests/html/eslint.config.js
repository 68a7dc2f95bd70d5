// ESLint for the HTML report's script (src/report/html/report.js): a browser script with no modules,
// run by the unit tier (ctest -R HtmlAssets). The recommended rules catch undefined names, unused
// variables and unreachable code, which nothing else sees before a browser runs the page.
'use strict';
const js = require('@eslint/js');
const globals = require('globals');

module.exports = [
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'script',
      globals: {...globals.browser},
    },
  },
];
