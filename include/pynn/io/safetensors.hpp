// Reading and writing the safetensors format (https://github.com/huggingface/safetensors), so
// checkpoints move between pynn, PyTorch, JAX and the Hugging Face tools. pynn reads and writes the
// two dtypes it computes in, F32 and F64. Writes are atomic; reads validate the whole file before
// returning anything.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pynn/tensor.hpp"

namespace pynn::io {

// Tensors in a checkpoint, by name; names are unique (a vector keeps the order they are given in).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
// The optional "__metadata__" string-to-string map of a safetensors header.
using Metadata = std::map<std::string, std::string>;

// The layout, as the format's specification describes it:
//   bytes [0, 8)      N, the header's length, an unsigned 64-bit little-endian integer
//   bytes [8, 8 + N)  a UTF-8 JSON object: for each tensor
//                       "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//                     and optionally "__metadata__": {"<key>": "<string value>", ...}
//   bytes [8 + N, )   the data buffer: each tensor's values, row-major and little-endian, at
//                     [begin, end) of this buffer; together they cover it exactly, with no gaps
//                     and no overlaps.
//
// save_safetensors pads the header with spaces to a multiple of 8 bytes and lays out the F64
// tensors first, then the F32 ones (each group in the order given), so every tensor's data is
// aligned to its element size in the file, as the reference implementation does.
//
// The file is written to a temporary file `path + ".tmp.<pid>"` in the same directory (`.<n>`
// appended while that name is taken: an existing file is never reused or removed), flushed to
// disk (fsync) and renamed over `path`, so a reader sees either the old file or the complete new
// one, never a partial one. Where the file system has O_TMPFILE (Linux, with /proc mounted) the
// temporary file is unnamed while it is written and gets its name just before the rename, so a
// killed save rarely leaves anything behind; elsewhere a killed save leaves the named file. On
// any failure the temporary file is removed, `path` is left as it was, and an IOError names both
// files and the reason. Saves to one path from several processes at once each write their own
// temporary file; the last rename wins.
//
// Throws ValueError before touching the disk if a tensor is undefined, a name appears twice or is
// "__metadata__", or a name or metadata string is not valid UTF-8.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});

// What load_safetensors returns with the metadata.
struct SafetensorsFile {
    NamedTensors tensors; // in the order of their data in the file
    Metadata metadata;    // empty if the file has no "__metadata__"
};

// Reads and validates the whole file, then returns its tensors (leaves, not requiring grad) in
// the order of their data in the file. Throws pynn::IOError if the file cannot be read or is not
// a valid safetensors file of F32/F64 tensors; the message names the file, the byte offset in it
// and what was expected there, e.g.
//   load_safetensors: /x/model.safetensors: byte 8: expected a 120-byte JSON header (the length
//   at byte 0), the file ends after 64 bytes
//   load_safetensors: /x/model.safetensors: byte 8: tensor "0.weight": dtype "F16" is not
//   supported; pynn reads F32 and F64
// Cases: a file shorter than 8 bytes; a header length past the end of the file; a header that is
// not a JSON object (or repeats a key); a tensor entry without a string "dtype", an array of
// non-negative integer "shape" or a two-integer "data_offsets"; a dtype other than F32/F64; data
// offsets that run backwards, overlap another tensor's, leave a gap, do not span exactly
// numel * element size bytes, or end past the end of the file (a truncated body); bytes after the
// last tensor; a "__metadata__" that is not a map of strings.
NamedTensors load_safetensors(const std::string& path);
// The same, with the header's "__metadata__".
SafetensorsFile read_safetensors(const std::string& path);

// Note [State dicts]
// A StateDict is what a training checkpoint holds, as PyTorch's state_dict(): named tensors plus
// small named values. models::Model, the optimizers, the learning-rate schedules and
// data::DataLoader each give one (state_dict()) and take one back (load_state_dict()); a
// checkpoint joins them under prefixes and is one safetensors file:
//
//   io::StateDict state;
//   state.add("model", model.state_dict());
//   state.add("optimizer", optimizer.state_dict(model.parameters()));
//   state.set_number("epoch", epoch);
//   io::save_state_dict(path, state);                 // atomic, as save_safetensors
//   ...
//   io::StateDict state = io::load_state_dict(path);
//   model.load_state_dict(state.part("model"));
//   optimizer.load_state_dict(model.parameters(), state.part("optimizer"));
//
// Tensors keep their names ("model.0.weight"); values go into the file's "__metadata__" map,
// which holds strings. A number is written as the shortest decimal that reads back as the same
// double (so a learning rate survives a round trip bit for bit) and integers up to 2^53 exactly;
// anything else (a generator's state, a seed above 2^53) is kept as text.
struct StateDict {
    NamedTensors tensors;
    Metadata values;

    void set_number(const std::string& key, double value);
    void set_text(const std::string& key, std::string value) { values[key] = std::move(value); }
    bool contains(const std::string& key) const; // a tensor or a value of that name
    // ValueError naming the key (and listing the keys there are) if it is missing, or is not a
    // number for number().
    double number(const std::string& key) const;
    const std::string& text(const std::string& key) const;
    const Tensor& tensor(const std::string& key) const;
    // Adds every entry of `part` as "<prefix>.<name>"; ValueError if a name is taken already.
    void add(const std::string& prefix, const StateDict& part);
    // The entries named "<prefix>.<name>", as "<name>" (empty if there are none).
    StateDict part(const std::string& prefix) const;
};

// save_safetensors(path, state.tensors, state.values): atomic, same errors.
void save_state_dict(const std::string& path, const StateDict& state);
// read_safetensors(path) as a StateDict: same validation and errors.
StateDict load_state_dict(const std::string& path);

} // namespace pynn::io
