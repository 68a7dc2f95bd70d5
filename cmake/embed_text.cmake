# Turns a text file into a C++ header holding it as `inline constexpr std::string_view NAME`, so the HTML
# report's stylesheet and script are real files (linted, edited as what they are) and the binary still
# needs nothing beside it. Run at build time: cmake -DINPUT=... -DOUTPUT=... -DNAME=... -P embed_text.cmake
# The bytes are written as a char array, not a string literal: any content is embedded exactly.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
# 16 bytes a line keeps the header readable in a diff.
string(REGEX REPLACE "(('\\\\x[0-9a-f][0-9a-f]',){16})" "\\1\n" bytes "${bytes}")
get_filename_component(source ${INPUT} NAME)
file(WRITE ${OUTPUT}.tmp
     "// Generated from ${source} by cmake/embed_text.cmake at build time: edit the source file.\n"
     "#pragma once\n#include <string_view>\n"
     "inline constexpr char ${NAME}_bytes[${size} + 1] = {\n${bytes}'\\0'};\n"
     "inline constexpr std::string_view ${NAME}{${NAME}_bytes, ${size}};\n")
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
