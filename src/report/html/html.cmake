# The HTML report's stylesheet and script, embedded into memlens_report at build time
# (cmake/embed_text.cmake): <build>/generated/report/html/report_{css,js}.h, included as
# "report/html/report_css.h" and "report/html/report_js.h". Included from the top-level CMakeLists.txt
# after memlens_layer(report ...).
set(MEMLENS_HTML_OUT ${CMAKE_BINARY_DIR}/generated/report/html)
file(MAKE_DIRECTORY ${MEMLENS_HTML_OUT})
foreach(part css js)
  set(input ${CMAKE_SOURCE_DIR}/src/report/html/report.${part})
  set(output ${MEMLENS_HTML_OUT}/report_${part}.h)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DNAME=kReport_${part}
            -P ${CMAKE_SOURCE_DIR}/cmake/embed_text.cmake
    DEPENDS ${input} ${CMAKE_SOURCE_DIR}/cmake/embed_text.cmake
    COMMENT "Embedding report.${part}"
    VERBATIM)
  target_sources(memlens_report PRIVATE ${output})
endforeach()
target_include_directories(memlens_report PUBLIC ${CMAKE_BINARY_DIR}/generated)
