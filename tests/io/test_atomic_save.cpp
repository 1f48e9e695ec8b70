// A save killed at any moment leaves the old checkpoint or the complete new one, never a torn
// file. A child process saves a large checkpoint over and over to the path that holds an older
// one, and is killed with SIGKILL after a seeded random delay; the file must then be byte for byte
// one of the two checkpoints and load. On Linux the save writes an unnamed temporary file, so the
// kills leave (almost) nothing behind; elsewhere the temporary files the killed children leave
// must not get in the way of later saves. POSIX only (fork, kill, waitpid); the child starts no
// thread.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <pynn/io/safetensors.hpp>
#include <pynn/pynn.hpp>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using pynn::testing::TempDir;
using namespace pynn;
using Bytes = std::vector<char>;

namespace {

Bytes read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    Bytes bytes(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
}

// Two layers, 1024 -> 1024 -> 512: 1.57M float32 parameters, a 6 MB file.
models::Sequential big_model(std::uint64_t seed) {
    manual_seed(seed);
    return models::Sequential{layers::Dense(1024, 1024, relu), layers::Dense(1024, 512)};
}

std::vector<std::string> temp_files(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.find(".tmp.") != std::string::npos) {
            names.push_back(name);
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

// Whether process `pid` has a temporary save file in `dir` open (an unnamed one shows in /proc
// as "<dir>/#<inode> (deleted)", a named one as "<dir>/<file>.tmp.<pid>", with `dir` resolved),
// or nothing when /proc cannot tell.
std::optional<bool> writing_temp_file(pid_t pid, const fs::path& dir) {
    std::error_code ec;
    const std::string prefix = fs::canonical(dir, ec).string() + "/";
    const fs::path fds = fs::path("/proc") / std::to_string(pid) / "fd";
    fs::directory_iterator it(fds, ec);
    if (ec) {
        return std::nullopt;
    }
    for (const auto& e : it) {
        const std::string target = fs::read_symlink(e.path(), ec).string();
        if (!ec && target.rfind(prefix, 0) == 0 &&
            (target.find("/#") != std::string::npos || target.find(".tmp.") != std::string::npos)) {
            return true;
        }
    }
    return false;
}

// Whether saves into `dir` start from an unnamed file (what save_safetensors tries first).
bool unnamed_temp_files(const fs::path& dir) {
#if defined(O_TMPFILE)
    const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        return false;
    }
    const bool named_by_proc = fs::exists("/proc/self/fd/" + std::to_string(fd));
    ::close(fd);
    return named_by_proc;
#else
    (void)dir;
    return false;
#endif
}

} // namespace

TEST_CASE("a save killed mid-write leaves the old checkpoint or the new one, never a torn file",
          "[io]") {
    const TempDir scratch("pynn_test_atomic_save_");
    const fs::path& dir = scratch.path();
    const std::string path = (dir / "model.safetensors").string();

    const models::Sequential a = big_model(1);
    const models::Sequential b = big_model(2);
    b.save((dir / "b.safetensors").string());
    const Bytes bytes_b = read_bytes((dir / "b.safetensors").string());
    fs::remove(dir / "b.safetensors");
    std::chrono::steady_clock::duration save_time{};
    for (int i = 0; i < 2; ++i) { // the slower of two saves, as a time scale for the kills
        const auto start = std::chrono::steady_clock::now();
        a.save(path);
        save_time = std::max(save_time, std::chrono::steady_clock::now() - start);
    }
    const Bytes bytes_a = read_bytes(path);
    REQUIRE(bytes_a.size() > 6'000'000);
    REQUIRE(bytes_a.size() == bytes_b.size()); // same layout: only a torn write could mix them
    const bool differ = bytes_a != bytes_b;    // (bools: Catch2 would print 6 MB of bytes)
    REQUIRE(differ);

    // Delays from 0 to about four saves, so kills land before the child's first rename (the
    // file is still A), after it (B), and mostly inside a write or fsync.
    const auto max_delay =
        std::chrono::duration_cast<std::chrono::microseconds>(save_time * 4).count() + 1000;
    std::mt19937_64 rng(20240601);
    std::uniform_int_distribution<std::int64_t> delay(0, max_delay);
    constexpr int kills = 12;
    int found_a = 0, found_b = 0, torn_writes = 0, mid_write = 0;
    bool proc_tells = true; // whether /proc showed the children's open files
    std::vector<std::string> strays;
    models::Sequential check = big_model(3);
    for (int k = 0; k < kills; ++k) {
        const std::int64_t wait_us = delay(rng);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) { // no Catch2 here: this process only saves until it is killed
            try {         // bounded, in case the parent fails before it kills
                const auto born = std::chrono::steady_clock::now();
                while (std::chrono::steady_clock::now() - born < std::chrono::seconds(20)) {
                    b.save(path);
                }
            } catch (...) {
                ::_exit(3);
            }
            ::_exit(0);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
        const std::optional<bool> writing = writing_temp_file(child, dir);
        proc_tells = proc_tells && writing.has_value();
        mid_write += writing.value_or(false) ? 1 : 0;
        REQUIRE(::kill(child, SIGKILL) == 0);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        INFO("kill " << k << " after " << wait_us << " us");
        REQUIRE(WIFSIGNALED(status));
        REQUIRE(WTERMSIG(status) == SIGKILL);

        const Bytes now = read_bytes(path);
        const bool is_a = now == bytes_a;
        const bool is_b = now == bytes_b;
        REQUIRE((is_a || is_b));
        found_a += is_a ? 1 : 0;
        found_b += is_b ? 1 : 0;
        check.load(path); // and it is a checkpoint the model takes

        const std::vector<std::string> left = temp_files(dir);
        torn_writes += left.size() > strays.size() ? 1 : 0;
        strays = left;
        for (const std::string& name : left) { // only the killed children's own temporary files
            CHECK(name.rfind("model.safetensors.tmp.", 0) == 0);
            CHECK(name != "model.safetensors.tmp." + std::to_string(::getpid()));
        }
    }
    INFO("old file " << found_a << " times, new file " << found_b << " times, killed while "
                     << "writing " << mid_write << " times, a temporary file left " << torn_writes
                     << " times, save time " << std::chrono::duration<double>(save_time).count()
                     << " s");
    CHECK(found_a + found_b == kills);
    // The kills did interrupt writes (the test tested something): seen in /proc, or else from
    // the temporary files they left.
    CHECK((proc_tells ? mid_write : torn_writes) > 0);
    if (unnamed_temp_files(dir)) {
        // A name exists only between naming the written file and renaming it, a short part of
        // a save: measured, one run in ~13 left one file behind (of 12 kills, 7-12 of them
        // while writing), where named temporary files are left by nearly every such kill.
        CHECK(strays.size() <= 2);
    }

    // Later saves work with the strays around, even one with this process's own temporary name
    // (a pid reused after a crash, or another PID namespace's process): it is left alone, and
    // the save takes the next free name.
    const std::string own = "model.safetensors.tmp." + std::to_string(::getpid());
    std::ofstream((dir / own).string(), std::ios::binary) << "junk";
    strays.push_back(own);
    std::sort(strays.begin(), strays.end());
    const models::Sequential c = big_model(4);
    c.save(path);
    CHECK(read_bytes((dir / own).string()) == Bytes{'j', 'u', 'n', 'k'});
    check.load(path);
    const std::vector<Tensor> got = check.parameters();
    const std::vector<Tensor> want = c.parameters();
    for (std::size_t i = 0; i < got.size(); ++i) {
        const bool same = got[i].values<float>() == want[i].values<float>();
        CHECK(same);
    }
    CHECK(temp_files(dir) == strays);
}

TEST_CASE("saves to one path from two processes at once: each writes its own temporary file",
          "[io]") {
    const TempDir scratch("pynn_test_two_savers_");
    const fs::path& dir = scratch.path();
    const std::string path = (dir / "model.safetensors").string();
    const models::Sequential a = big_model(1);
    const models::Sequential b = big_model(2);
    a.save((dir / "a.safetensors").string());
    b.save((dir / "b.safetensors").string());
    const Bytes bytes_a = read_bytes((dir / "a.safetensors").string());
    const Bytes bytes_b = read_bytes((dir / "b.safetensors").string());

    std::vector<pid_t> children;
    for (const models::Sequential* model : {&a, &b}) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) { // no Catch2 here
            try {
                for (int i = 0; i < 10; ++i) {
                    model->save(path);
                }
            } catch (...) {
                ::_exit(3);
            }
            ::_exit(0);
        }
        children.push_back(child);
    }
    for (const pid_t child : children) {
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0); // every save went through
    }
    const Bytes now = read_bytes(path);
    CHECK((now == bytes_a || now == bytes_b));
    CHECK(temp_files(dir).empty());
}
