# Runs one libFuzzer target for SECONDS from a fresh copy of its seed corpus
# in WORK, so the committed corpus (SEEDS) is never written to. Fails when
# libFuzzer reports anything: a crash, a sanitizer error, a leak, a timeout,
# or a broken property (the targets abort()). The reproducer stays in
# WORK/artifacts. Usage: cmake -DFUZZER= -DSEEDS= -DDICT= -DWORK= -DSECONDS= -P run_fuzz.cmake
foreach(var FUZZER SEEDS DICT WORK SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz.cmake: -D${var}= is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus" "${WORK}/artifacts")
file(GLOB seeds "${SEEDS}/*")
file(COPY ${seeds} DESTINATION "${WORK}/corpus")

execute_process(COMMAND "${FUZZER}" -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
                        -dict=${DICT} -artifact_prefix=${WORK}/artifacts/ -print_final_stats=1
                        "${WORK}/corpus"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found "${WORK}/artifacts/*")
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); reproducer: ${found}\n"
                      "Re-run it with: ${FUZZER} <reproducer>")
endif()
