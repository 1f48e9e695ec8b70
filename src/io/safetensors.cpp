// safetensors reading and writing. Loading checks the header against the file's size, then every
// tensor entry, then the layout of the data buffer as a whole, and only then reads the data
// straight into each tensor's storage. Saving writes a temporary file in the target's directory,
// fsyncs it and renames it over the target, so an interrupted save never leaves a partial
// checkpoint.
#include "pynn/io/safetensors.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "graph/node.hpp"
#include "graph/storage.hpp"
#include "ops/builder.hpp"
#include "pynn/error.hpp"

namespace pynn::io {
namespace {

constexpr std::uint64_t length_field_bytes = 8;
constexpr std::string_view metadata_key = "__metadata__";

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string errno_text(int err) { return std::strerror(err); }

// How deeply `value` nests arrays and objects, counted up to just past `limit`. Iterative: a
// hostile header can nest arrays a million deep, beyond what a recursive walk's stack survives.
std::size_t nesting_depth(const nlohmann::json& value, std::size_t limit) {
    std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&value, 1}};
    std::size_t deepest = 0;
    while (!todo.empty() && deepest <= limit) {
        const auto [v, depth] = todo.back();
        todo.pop_back();
        if (v->is_structured()) {
            deepest = std::max(deepest, depth);
            for (const auto& child : *v) {
                todo.emplace_back(&child, depth + 1);
            }
        }
    }
    return deepest;
}

// A JSON value for an error message, cut short if long (a header can be megabytes). Deeply nested
// values are not printed at all: nlohmann's dump() recurses once per level.
std::string excerpt(const nlohmann::json& value) {
    constexpr std::size_t max_depth = 32;
    if (nesting_depth(value, max_depth) > max_depth) {
        return std::string(value.is_array() ? "[" : "{") + "... (nested more than " +
               std::to_string(max_depth) + " levels deep)";
    }
    constexpr std::size_t max_chars = 60;
    std::string s = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (s.size() > max_chars) {
        s = s.substr(0, max_chars) + "...";
    }
    return s;
}

// Closes a file descriptor on every path out of a scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : m_fd(fd) {}
    ~FileDescriptor() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    int get() const { return m_fd; }
    // Closes now and reports the result: close() is where some file systems (NFS) report a failed
    // write, so a writer must check it.
    int close() {
        const int fd = std::exchange(m_fd, -1);
        return ::close(fd);
    }

private:
    int m_fd;
};

// safetensors data is little-endian; pynn keeps values in the host's order.
void swap_bytes_if_big_endian(void* data, std::size_t count, std::size_t element_size) {
    if constexpr (std::endian::native == std::endian::big) {
        auto* bytes = static_cast<unsigned char*>(data);
        for (std::size_t i = 0; i < count; ++i) {
            std::reverse(bytes + i * element_size, bytes + (i + 1) * element_size);
        }
    } else {
        (void)data;
        (void)count;
        (void)element_size;
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

struct Entry {
    std::string name;
    DType dtype = DType::Float32;
    Shape shape;
    std::uint64_t begin = 0; // data_offsets, relative to the data buffer
    std::uint64_t end = 0;
};

// Error context: "load_safetensors: <path>: byte <offset>: ".
class Reader {
public:
    explicit Reader(std::string path) : m_path(std::move(path)) {}

    template <class... Args>
    [[noreturn]] void fail(std::uint64_t byte, const Args&... args) const {
        std::ostringstream msg;
        detail::stream_all(msg, "load_safetensors: ", m_path, ": byte ", byte, ": ", args...);
        throw IOError(msg.str());
    }
    template <class... Args>
    void check(bool cond, std::uint64_t byte, const Args&... args) const {
        if (!cond) {
            fail(byte, args...);
        }
    }

    void open() {
        m_fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (m_fd < 0) {
            const int err = errno;
            throw IOError("load_safetensors: " + m_path + ": cannot open: " + errno_text(err));
        }
        struct stat st {};
        if (::fstat(m_fd, &st) != 0) {
            const int err = errno;
            throw IOError("load_safetensors: " + m_path + ": cannot stat: " + errno_text(err));
        }
        PYNN_CHECK(S_ISREG(st.st_mode), IOError, "load_safetensors: ", m_path,
                   ": cannot read: it is ",
                   S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        m_size = static_cast<std::uint64_t>(st.st_size);
    }
    ~Reader() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    std::uint64_t size() const { return m_size; }

    // Reads exactly `count` bytes at `offset`; `what` says what they are, for the error.
    void read_at(std::uint64_t offset, void* out, std::uint64_t count, const std::string& what) {
        auto* dst = static_cast<unsigned char*>(out);
        std::uint64_t done = 0;
        while (done < count) {
            const std::size_t chunk = static_cast<std::size_t>(
                std::min<std::uint64_t>(count - done, std::uint64_t{1} << 30));
            const ssize_t got = ::pread(m_fd, dst + done, chunk, static_cast<off_t>(offset + done));
            if (got < 0) {
                if (errno == EINTR) {
                    continue;
                }
                const int err = errno;
                fail(offset + done, "read error in ", what, ": ", errno_text(err));
            }
            // The size was checked against fstat; a short read means the file shrank meanwhile.
            check(got > 0, offset + done, "expected ", count, " bytes of ", what,
                  ", the file ends after ", offset + done,
                  " bytes (was it truncated while being read?)");
            done += static_cast<std::uint64_t>(got);
        }
    }

private:
    std::string m_path;
    int m_fd = -1;
    std::uint64_t m_size = 0;
};

// Object keys must be unique at every level (nlohmann would keep the last silently).
class DuplicateKeyCheck {
public:
    bool operator()(int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (event == Event::object_start) {
            m_open.emplace_back();
        } else if (event == Event::object_end) {
            m_open.pop_back();
        } else if (event == Event::key && !m_open.empty()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!m_open.back().insert(key).second && m_duplicate.empty()) {
                m_duplicate = key;
            }
        }
        return true;
    }
    const std::string& duplicate() const { return m_duplicate; }

private:
    std::vector<std::set<std::string>> m_open;
    std::string m_duplicate;
};

// nlohmann's message without its "[json.exception.<kind>.<id>] " tag.
std::string json_error_text(const nlohmann::json::exception& e) {
    std::string what = e.what();
    if (const auto tag_end = what.find("] "); tag_end != std::string::npos) {
        what = what.substr(tag_end + 2);
    }
    return what;
}

nlohmann::json parse_header(const Reader& r, const std::string& text) {
    auto check = std::make_shared<DuplicateKeyCheck>();
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(
            text, [check](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
                return (*check)(depth, event, parsed);
            });
    } catch (const nlohmann::json::parse_error& e) {
        // e.byte counts from 1 within the header.
        r.fail(length_field_bytes + (e.byte > 0 ? e.byte - 1 : 0),
               "expected a valid JSON header: ", json_error_text(e));
    } catch (const nlohmann::json::exception& e) {
        // Valid JSON that nlohmann cannot hold, e.g. a number beyond double's range (out_of_range
        // 406); such errors carry no position, so the offset is the header's start.
        r.fail(length_field_bytes, "expected a valid JSON header: ", json_error_text(e));
    }
    r.check(check->duplicate().empty(), length_field_bytes, "the JSON header repeats the key ",
            in_quotes(check->duplicate()));
    r.check(header.is_object(), length_field_bytes,
            "expected the JSON header to be an object, found ", header.type_name());
    return header;
}

Metadata parse_metadata(const Reader& r, const nlohmann::json& value) {
    r.check(value.is_object(), length_field_bytes, "expected ", in_quotes(metadata_key),
            " to be an object of strings, found ", value.type_name());
    Metadata out;
    for (const auto& [key, v] : value.items()) {
        r.check(v.is_string(), length_field_bytes, in_quotes(metadata_key),
                ": expected the value of ", in_quotes(key), " to be a string, found ",
                v.type_name(), " ", excerpt(v));
        out.emplace(key, v.get<std::string>());
    }
    return out;
}

std::uint64_t checked_product(const Reader& r, std::uint64_t a, std::uint64_t b,
                              const std::string& name, const nlohmann::json& shape) {
    // Not r.check(): its arguments, the excerpt among them, would be built for every dimension.
    if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b) {
        r.fail(length_field_bytes, "tensor ", in_quotes(name), ": shape ", excerpt(shape),
               " has more than 2^64 bytes");
    }
    return a * b;
}

Entry parse_entry(const Reader& r, const std::string& name, const nlohmann::json& value) {
    constexpr std::uint64_t at = length_field_bytes; // fields of the header have no finer offset
    const std::string tensor = "tensor " + in_quotes(name) + ": ";
    r.check(value.is_object(), at, tensor,
            "expected an object with \"dtype\", \"shape\" and \"data_offsets\", found ",
            value.type_name());
    Entry e;
    e.name = name;

    const auto dtype = value.find("dtype");
    r.check(dtype != value.end(), at, tensor, "expected a \"dtype\" field");
    r.check(dtype->is_string(), at, tensor, "expected \"dtype\" to be a string, found ",
            dtype->type_name());
    const auto& dtype_name = dtype->get_ref<const std::string&>();
    if (dtype_name == "F32") {
        e.dtype = DType::Float32;
    } else if (dtype_name == "F64") {
        e.dtype = DType::Float64;
    } else {
        r.fail(at, tensor, "dtype ", in_quotes(dtype_name),
               " is not supported; pynn reads F32 and F64");
    }

    const auto shape = value.find("shape");
    r.check(shape != value.end(), at, tensor, "expected a \"shape\" field");
    r.check(shape->is_array() &&
                std::all_of(shape->begin(), shape->end(),
                            [](const nlohmann::json& d) { return d.is_number_unsigned(); }),
            at, tensor, "expected \"shape\" to be an array of non-negative integers, found ",
            excerpt(*shape));
    std::uint64_t bytes = dtype_size(e.dtype);
    for (const auto& d : *shape) {
        const auto dim = d.get<std::uint64_t>();
        bytes = checked_product(r, bytes, dim, name, *shape);
        e.shape.push_back(static_cast<std::size_t>(dim));
    }
    // Strides multiply the sizes even when one is 0, so [0, 2^62, 2^62] is no more addressable
    // than [1, 2^62, 2^62], though it holds no bytes.
    constexpr auto max_extent =
        static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
    std::uint64_t extent = dtype_size(e.dtype);
    for (const std::size_t dim : e.shape) {
        const std::uint64_t factor = std::max<std::uint64_t>(dim, 1);
        if (extent > max_extent / factor) {
            r.fail(at, tensor, "shape ", excerpt(*shape),
                   " cannot be addressed: its sizes (0 counted as 1) multiply to more than 2^63 "
                   "bytes");
        }
        extent *= factor;
    }

    const auto offsets = value.find("data_offsets");
    r.check(offsets != value.end(), at, tensor, "expected a \"data_offsets\" field");
    r.check(offsets->is_array() && offsets->size() == 2 && (*offsets)[0].is_number_unsigned() &&
                (*offsets)[1].is_number_unsigned(),
            at, tensor,
            "expected \"data_offsets\" to be an array of two non-negative integers [begin, end], "
            "found ",
            excerpt(*offsets));
    e.begin = (*offsets)[0].get<std::uint64_t>();
    e.end = (*offsets)[1].get<std::uint64_t>();
    r.check(e.begin <= e.end, at, tensor, "data_offsets [", e.begin, ", ", e.end,
            ") end before they begin");
    r.check(e.end - e.begin == bytes, at, tensor, dtype_name, " ", to_string(e.shape), " needs ",
            bytes, " bytes, but data_offsets [", e.begin, ", ", e.end, ") span ", e.end - e.begin);
    return e;
}

// The entries, sorted by position, must tile the data buffer [0, buffer_size) exactly.
void check_layout(const Reader& r, std::vector<Entry>& entries, std::uint64_t data_start) {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
    });
    const std::uint64_t buffer_size = r.size() - data_start;
    std::uint64_t pos = 0;
    const Entry* previous = nullptr;
    for (const Entry& e : entries) {
        r.check(e.begin >= pos, data_start + e.begin, "tensor ", in_quotes(e.name),
                ": data_offsets [", e.begin, ", ", e.end, ") overlap those of tensor ",
                previous ? in_quotes(previous->name) : std::string(), " [",
                previous ? previous->begin : 0, ", ", pos, ")");
        r.check(e.begin == pos, data_start + pos, "expected the data of a tensor at data offset ",
                pos, ", but the next tensor, ", in_quotes(e.name), ", begins at ", e.begin,
                " (data_offsets must cover the data buffer without gaps)");
        r.check(e.end <= buffer_size, data_start + e.begin, "tensor ", in_quotes(e.name),
                ": expected ", e.end - e.begin, " bytes of data (data_offsets [", e.begin, ", ",
                e.end, ")), the file ends after ", r.size(), " bytes (truncated?)");
        pos = e.end;
        previous = &e;
    }
    r.check(pos == buffer_size, data_start + pos, "expected the end of the file after ",
            previous ? "the data of tensor " + in_quotes(previous->name)
                     : std::string("the header"),
            ", found ", buffer_size - pos, " more bytes that belong to no tensor");
}

} // namespace

SafetensorsFile read_safetensors(const std::string& path) {
    Reader r(path);
    r.open();

    r.check(r.size() >= length_field_bytes, 0,
            "expected an 8-byte little-endian header length, the file has only ", r.size(),
            " bytes");
    std::array<unsigned char, length_field_bytes> length_bytes{};
    r.read_at(0, length_bytes.data(), length_bytes.size(), "the header length");
    std::uint64_t header_size = 0;
    for (std::size_t i = 0; i < length_bytes.size(); ++i) {
        header_size |= std::uint64_t{length_bytes[i]} << (8 * i);
    }
    r.check(header_size <= r.size() - length_field_bytes, length_field_bytes, "expected a ",
            header_size, "-byte JSON header (the length at byte 0), the file ends after ", r.size(),
            " bytes");

    std::string text(static_cast<std::size_t>(header_size), '\0');
    r.read_at(length_field_bytes, text.data(), header_size, "the JSON header");
    const nlohmann::json header = parse_header(r, text);

    SafetensorsFile out;
    std::vector<Entry> entries;
    for (const auto& [key, value] : header.items()) {
        if (key == metadata_key) {
            out.metadata = parse_metadata(r, value);
        } else {
            entries.push_back(parse_entry(r, key, value));
        }
    }
    const std::uint64_t data_start = length_field_bytes + header_size;
    check_layout(r, entries, data_start);

    out.tensors.reserve(entries.size());
    for (const Entry& e : entries) {
        auto storage = std::make_shared<Storage>(e.dtype, numel(e.shape));
        r.read_at(data_start + e.begin, storage->raw(), e.end - e.begin,
                  "tensor " + in_quotes(e.name));
        swap_bytes_if_big_endian(storage->raw(), storage->numel(), dtype_size(e.dtype));
        out.tensors.emplace_back(e.name, Tensor(make_leaf(std::move(storage), e.shape)));
    }
    return out;
}

NamedTensors load_safetensors(const std::string& path) { return read_safetensors(path).tensors; }

// ---------------------------------------------------------------------------------------------
// Saving

namespace {

std::string directory_of(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// The umask of this process, read without changing it (umask() would, for every thread), or -1.
int process_umask() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("Umask:", 0) == 0) {
            int mask = -1;
            std::istringstream(line.substr(6)) >> std::oct >> mask;
            return mask;
        }
    }
    return -1;
}

// The file a save writes before renaming it over the target, named `<target>.tmp.<pid>` (or
// `.tmp.<pid>.<n>` when that name is taken: a file under this name may belong to a process of
// another PID namespace, or be left by a killed one, so it is never removed or reused). Where it
// can, it starts as an unnamed file (Linux O_TMPFILE) in the target's folder and gets its name
// only right before the rename, so a save killed while writing (the slow part) leaves nothing
// behind; that needs /proc (to name it) and the umask (O_TMPFILE skipped it on kernels before
// 2022). Otherwise it is created under its name. Names it created are removed unless the save
// went through.
class TempFile {
public:
    explicit TempFile(const std::string& target)
        : m_base(target + ".tmp." + std::to_string(::getpid())), m_path(m_base) {}
    ~TempFile() {
        if (m_named && !m_committed) {
            ::unlink(m_path.c_str());
        }
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    // The file's name, or the name it will get.
    const std::string& path() const { return m_path; }

    // A descriptor open for writing, or -1 with errno from creating the named file.
    int open(const std::string& directory) {
#if defined(O_TMPFILE)
        const int unnamed = ::open(directory.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (unnamed >= 0) {
            const int mask = process_umask();
            if (mask >= 0 && ::access(proc_path(unnamed).c_str(), F_OK) == 0 &&
                ::fchmod(unnamed, static_cast<mode_t>(0666 & ~mask)) == 0) {
                m_unnamed = true;
                return unnamed;
            }
            ::close(unnamed);
        }
#else
        (void)directory;
#endif
        for (int i = 0; i < kNames; ++i) {
            m_path = name_number(i);
            const int fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd >= 0) {
                m_named = true;
                return fd;
            }
            if (errno != EEXIST) {
                break;
            }
        }
        return -1;
    }

    // Gives an unnamed file (fd still open) the first free name; 0, or -1 with errno.
    int name(int fd) {
        for (int i = 0; m_unnamed && !m_named && i < kNames; ++i) {
            m_path = name_number(i);
            if (::linkat(AT_FDCWD, proc_path(fd).c_str(), AT_FDCWD, m_path.c_str(),
                         AT_SYMLINK_FOLLOW) == 0) {
                m_named = true;
            } else if (errno != EEXIST) {
                return -1;
            }
        }
        return m_named ? 0 : -1;
    }

    void commit() { m_committed = true; }

private:
    static constexpr int kNames = 100; // tries before giving up with EEXIST
    static std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }
    std::string name_number(int i) const {
        return i == 0 ? m_base : m_base + "." + std::to_string(i);
    }

    std::string m_base;
    std::string m_path;
    bool m_unnamed = false; // an O_TMPFILE file, named by name()
    bool m_named = false;   // m_path is a name this object created
    bool m_committed = false;
};

class Writer {
public:
    Writer(const std::string& path, const TempFile& temp, int fd)
        : m_path(path), m_temp(temp), m_fd(fd) {}

    void write(const void* data, std::size_t count) {
        const auto* src = static_cast<const unsigned char*>(data);
        std::size_t done = 0;
        while (done < count) {
            const ssize_t put =
                ::write(m_fd, src + done, std::min<std::size_t>(count - done, 1U << 30));
            if (put < 0) {
                if (errno == EINTR) {
                    continue;
                }
                const int err = errno;
                fail(err, "cannot write byte " + std::to_string(m_offset + done) + " of " +
                              m_temp.path());
            }
            done += static_cast<std::size_t>(put);
        }
        m_offset += count;
    }

    // `action` says what failed, e.g. "cannot close the temporary file /x/m.safetensors.tmp.7".
    [[noreturn]] void fail(int err, const std::string& action) const {
        throw IOError("save_safetensors: " + m_path + ": " + action + ": " + errno_text(err) +
                      "; " + m_path + " was not changed");
    }

private:
    const std::string& m_path;
    const TempFile& m_temp;
    int m_fd;
    std::uint64_t m_offset = 0;
};

template <class T>
void write_values(Writer& w, const Tensor& t) {
    xt::xarray<T> values = t.values<T>(); // a row-major copy we may byte-swap
    swap_bytes_if_big_endian(values.data(), values.size(), sizeof(T));
    w.write(values.data(), values.size() * sizeof(T));
}

// Makes the rename itself durable. Best effort: the new file is already in place, so a failure
// here is no reason to report the save as failed.
void sync_directory_of(const std::string& path) {
    const int fd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

} // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata) {
    std::set<std::string_view> names;
    for (const auto& [name, t] : tensors) {
        PYNN_CHECK(t.defined(), ValueError, "save_safetensors: ", path, ": tensor ",
                   in_quotes(name), " is undefined");
        PYNN_CHECK(name != metadata_key, ValueError, "save_safetensors: ", path, ": ",
                   in_quotes(metadata_key),
                   " is reserved for the metadata and cannot name a tensor");
        PYNN_CHECK(names.insert(name).second, ValueError, "save_safetensors: ", path,
                   ": the tensor name ", in_quotes(name), " appears twice");
    }

    // F64 before F32: with the header padded to a multiple of 8, every tensor is then aligned to
    // its element size in the file.
    std::vector<const std::pair<std::string, Tensor>*> order;
    order.reserve(tensors.size());
    for (const auto& nt : tensors) {
        order.push_back(&nt);
    }
    std::stable_partition(order.begin(), order.end(),
                          [](const auto* nt) { return nt->second.dtype() == DType::Float64; });

    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        header[std::string(metadata_key)] = metadata;
    }
    std::uint64_t offset = 0;
    for (const auto* nt : order) {
        const Tensor& t = nt->second;
        const std::uint64_t bytes = t.numel() * dtype_size(t.dtype());
        header[nt->first] = {{"dtype", t.dtype() == DType::Float64 ? "F64" : "F32"},
                             {"shape", t.shape()},
                             {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::type_error&) {
        throw ValueError("save_safetensors: " + path +
                         ": a tensor name or metadata string is not valid UTF-8");
    }
    text.append((8 - text.size() % 8) % 8, ' ');

    TempFile temp(path);
    FileDescriptor fd(temp.open(directory_of(path)));
    if (fd.get() < 0) {
        const int err = errno;
        throw IOError("save_safetensors: " + path + ": cannot create the temporary file " +
                      temp.path() + ": " + errno_text(err) + "; " + path + " was not changed");
    }
    Writer w(path, temp, fd.get());
    std::array<unsigned char, length_field_bytes> length_bytes{};
    for (std::size_t i = 0; i < length_bytes.size(); ++i) {
        length_bytes[i] = static_cast<unsigned char>(std::uint64_t{text.size()} >> (8 * i));
    }
    w.write(length_bytes.data(), length_bytes.size());
    w.write(text.data(), text.size());
    for (const auto* nt : order) {
        if (nt->second.dtype() == DType::Float64) {
            write_values<double>(w, nt->second);
        } else {
            write_values<float>(w, nt->second);
        }
    }
    if (::fsync(fd.get()) != 0) {
        const int err = errno;
        w.fail(err, "cannot flush (fsync) the temporary file " + temp.path());
    }
    if (temp.name(fd.get()) != 0) {
        const int err = errno;
        w.fail(err, "cannot name the temporary file " + temp.path());
    }
    if (fd.close() != 0) {
        const int err = errno;
        w.fail(err, "cannot close the temporary file " + temp.path());
    }
    if (::rename(temp.path().c_str(), path.c_str()) != 0) {
        const int err = errno;
        w.fail(err, "cannot rename the temporary file " + temp.path() + " to " + path);
    }
    temp.commit();
    sync_directory_of(path);
}

// ---------------------------------------------------------------------------------------------
// State dicts (Note [State dicts] in the header)

namespace {

std::string keys_of(const StateDict& state) {
    std::vector<std::string> keys;
    for (const auto& [name, t] : state.tensors) {
        keys.push_back(in_quotes(name));
    }
    for (const auto& [name, v] : state.values) {
        keys.push_back(in_quotes(name));
    }
    if (keys.empty()) {
        return "it is empty";
    }
    std::sort(keys.begin(), keys.end());
    std::string out = "it has ";
    for (std::size_t i = 0; i < keys.size(); ++i) {
        out += (i > 0 ? ", " : "") + keys[i];
    }
    return out;
}

} // namespace

void StateDict::set_number(const std::string& key, double value) {
    std::array<char, 64> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    PYNN_ASSERT(ec == std::errc(), "StateDict: cannot format ", value);
    values[key] = std::string(buf.data(), end);
}

bool StateDict::contains(const std::string& key) const {
    return values.count(key) > 0 || std::any_of(tensors.begin(), tensors.end(),
                                                [&](const auto& nt) { return nt.first == key; });
}

const std::string& StateDict::text(const std::string& key) const {
    const auto it = values.find(key);
    PYNN_CHECK(it != values.end(), ValueError, "StateDict: no value ", in_quotes(key), " (",
               keys_of(*this), ")");
    return it->second;
}

double StateDict::number(const std::string& key) const {
    const std::string& v = text(key);
    double value = 0.0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    PYNN_CHECK(ec == std::errc() && end == v.data() + v.size() && !v.empty(), ValueError,
               "StateDict: value ", in_quotes(key), " is ", in_quotes(v), ", not a number");
    return value;
}

const Tensor& StateDict::tensor(const std::string& key) const {
    const auto it = std::find_if(tensors.begin(), tensors.end(),
                                 [&](const auto& nt) { return nt.first == key; });
    PYNN_CHECK(it != tensors.end(), ValueError, "StateDict: no tensor ", in_quotes(key), " (",
               keys_of(*this), ")");
    return it->second;
}

void StateDict::add(const std::string& prefix, const StateDict& part) {
    std::set<std::string> keys; // checked first, so a failed add adds nothing
    const auto check_new = [&](const std::string& name) {
        const std::string key = prefix + "." + name;
        PYNN_CHECK(!contains(key) && keys.insert(key).second, ValueError,
                   "StateDict::add: ", in_quotes(key), " is there already");
    };
    for (const auto& [name, t] : part.tensors) {
        check_new(name);
    }
    for (const auto& [name, v] : part.values) {
        check_new(name);
    }
    for (const auto& [name, t] : part.tensors) {
        tensors.emplace_back(prefix + "." + name, t);
    }
    for (const auto& [name, v] : part.values) {
        values.emplace(prefix + "." + name, v);
    }
}

StateDict StateDict::part(const std::string& prefix) const {
    const std::string start = prefix + ".";
    StateDict out;
    for (const auto& [name, t] : tensors) {
        if (name.starts_with(start)) {
            out.tensors.emplace_back(name.substr(start.size()), t);
        }
    }
    for (const auto& [name, v] : values) {
        if (name.starts_with(start)) {
            out.values.emplace(name.substr(start.size()), v);
        }
    }
    return out;
}

void save_state_dict(const std::string& path, const StateDict& state) {
    save_safetensors(path, state.tensors, state.values);
}

StateDict load_state_dict(const std::string& path) {
    SafetensorsFile file = read_safetensors(path);
    return {std::move(file.tensors), std::move(file.metadata)};
}

} // namespace pynn::io
