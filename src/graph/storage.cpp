// Aligned allocation for Storage. 64 bytes matches a cache line and AVX-512's widest load.
#include "graph/storage.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace pynn {

namespace {
constexpr std::size_t kAlignment = 64;

// Blocks of 64 KiB and more are kept for reuse when freed. A training loop allocates the same
// sizes every step (batches, outputs, gradients); from glibc they would come fresh from the
// kernel each time (mmap, or the heap grown back after a trim) and page-fault on first touch.
// Bounded: at most kPerSize blocks of one size and kMaxCached bytes in all. Off under
// AddressSanitizer, which must see every free to catch a use after it.
constexpr std::size_t kMinCached = std::size_t{64} << 10;
constexpr std::size_t kPerSize = 8;
constexpr std::size_t kMaxCached = std::size_t{256} << 20;
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCacheBlocks = false;
#else
constexpr bool kCacheBlocks = true;
#endif

class BlockCache {
public:
    void* take(std::size_t bytes) {
        std::lock_guard<std::mutex> lock(m_mutex);
        auto it = m_free.find(bytes);
        if (it == m_free.end() || it->second.empty()) {
            return nullptr;
        }
        void* p = it->second.back();
        it->second.pop_back();
        m_cached -= bytes;
        return p;
    }
    bool give(void* p, std::size_t bytes) {
        std::lock_guard<std::mutex> lock(m_mutex);
        std::vector<void*>& blocks = m_free[bytes];
        if (blocks.size() >= kPerSize || m_cached + bytes > kMaxCached) {
            return false;
        }
        blocks.push_back(p);
        m_cached += bytes;
        return true;
    }

private:
    std::mutex m_mutex;
    std::unordered_map<std::size_t, std::vector<void*>> m_free;
    std::size_t m_cached = 0;
};

// Never destroyed: storages held by other statics (the plan cache's constants) are freed during
// static destruction, possibly after this would have been.
BlockCache& block_cache() {
    static auto* cache = new BlockCache;
    return *cache;
}

std::size_t rounded_bytes(std::size_t numel, DType dtype) {
    const std::size_t bytes = std::max<std::size_t>(numel * dtype_size(dtype), 1);
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}
} // namespace

Storage::Storage(DType dtype, std::size_t numel) : m_dtype(dtype), m_numel(numel) {
    const std::size_t bytes = rounded_bytes(numel, dtype);
    m_data = kCacheBlocks && bytes >= kMinCached ? block_cache().take(bytes) : nullptr;
    if (m_data == nullptr) {
        m_data = std::aligned_alloc(kAlignment, bytes);
    }
    if (m_data == nullptr) {
        throw std::bad_alloc();
    }
}

Storage::~Storage() {
    const std::size_t bytes = rounded_bytes(m_numel, m_dtype);
    if (!(kCacheBlocks && bytes >= kMinCached && block_cache().give(m_data, bytes))) {
        std::free(m_data);
    }
}

void Storage::fill(double value) {
    if (m_dtype == DType::Float32) {
        std::fill_n(data<float>(), m_numel, static_cast<float>(value));
    } else {
        std::fill_n(data<double>(), m_numel, value);
    }
}

std::shared_ptr<Storage> Storage::clone() const {
    auto copy = std::make_shared<Storage>(m_dtype, m_numel);
    std::memcpy(copy->raw(), m_data, bytes());
    return copy;
}

} // namespace pynn
