# pynn_set_warnings(target): the project's warning set, applied per target.
function(pynn_set_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                                             -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                                             -Woverloaded-virtual
                                             # GCC 12 false positives inside xsimd AVX-512
                                             # intrinsics and std::string (GCC PR 105329).
                                             -Wno-maybe-uninitialized -Wno-restrict)
    if(PYNN_WARNINGS_AS_ERRORS)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
