// What the fuzz targets share: a per-process scratch file for readers that take a path, and the
// one rule every target enforces, that a failure is a pynn::Error a user caused and not a bug.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <unistd.h>

#include <pynn/error.hpp>

namespace pynn_fuzz {

// One file per process (libFuzzer's -fork and -jobs run several), on tmpfs when there is one,
// rewritten for every input and removed at exit.
class ScratchFile {
public:
    explicit ScratchFile(std::string_view suffix) {
        namespace fs = std::filesystem;
        std::error_code ec;
        const fs::path dir = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                                 ? fs::path("/dev/shm")
                                 : fs::temp_directory_path();
        m_path = (dir / ("pynn_fuzz_" + std::to_string(::getpid()) + std::string(suffix))).string();
    }
    ~ScratchFile() { std::remove(m_path.c_str()); }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;

    const std::string& path() const { return m_path; }

    void write(const std::uint8_t* data, std::size_t size) const {
        std::FILE* f = std::fopen(m_path.c_str(), "wb");
        if (f == nullptr || (size > 0 && std::fwrite(data, 1, size, f) != size) ||
            std::fclose(f) != 0) {
            std::perror(m_path.c_str());
            std::abort(); // the harness, not pynn, failed: stop rather than report nonsense
        }
    }

private:
    std::string m_path;
};

// PYNN_ASSERT throws pynn::Error too, but its message, starting "internal error: ", means pynn
// broke an invariant of its own: a bug for the fuzzer to report, like any other exception.
inline void check_user_error(const pynn::Error& e) {
    if (std::string_view(e.what()).starts_with("internal error")) {
        std::fprintf(stderr, "pynn internal error: %s\n", e.what());
        std::abort();
    }
}

} // namespace pynn_fuzz
