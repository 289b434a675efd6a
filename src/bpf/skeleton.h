// RAII over bpftool-generated skeletons (C++ members open/load/destroy): the lifecycle is
//   Skeleton<weir_tc>::open()  -> configure (set_max_entries, set_pin_path, rodata via get())
//   -> load()  -> use get()->progs / get()->maps  -> destructor destroys the object.
//
// Verifier log capture: the object is opened with bpf_object_open_opts.kernel_log_buf (libbpf
// 1.1 has it). With kernel_log_level 0 libbpf loads without a log first and, when a program is
// rejected, retries with log level 1 into our buffer; load() then returns an Error whose msg
// ends with the tail of the verifier log, and last_log() returns the whole captured log.
#pragma once

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/result.h"

namespace weir::bpf {

namespace detail {
// Untyped helpers behind the template (skeleton.cpp).
// Fill libbpf open options with our log buffer (LIBBPF_OPTS lives in skeleton.cpp).
std::unique_ptr<struct bpf_object_open_opts> make_open_opts(const std::string& object_name,
                                                            std::vector<char>& log_buf);
Status set_max_entries(struct bpf_object* obj, const std::string& map_name, uint32_t n);
Status set_pin_path(struct bpf_object* obj, const std::string& map_name, const std::string& path);
// Error for a failed load: names the object, carries errno and the verifier log's tail.
Error load_error(const std::string& object_name, int err, const std::vector<char>& log_buf);
// The captured log as a string (NUL-terminated buffer contents).
std::string log_text(const std::vector<char>& log_buf);
}  // namespace detail

// Size of the verifier log buffer (the tail is kept by the kernel when it overflows).
inline constexpr size_t kVerifierLogSize = 4u << 20;
// How many bytes of the log tail load() puts into the Error message.
inline constexpr size_t kVerifierLogTailInError = 8192;

template <typename S>
class Skeleton {
 public:
  Skeleton() = default;
  Skeleton(Skeleton&& o) noexcept
      : skel_(std::exchange(o.skel_, nullptr)), name_(std::move(o.name_)),
        log_(std::move(o.log_)), opts_(std::move(o.opts_)), loaded_(o.loaded_) {}
  Skeleton& operator=(Skeleton&& o) noexcept {
    if (this != &o) {
      reset();
      skel_ = std::exchange(o.skel_, nullptr);
      name_ = std::move(o.name_);
      log_ = std::move(o.log_);
      opts_ = std::move(o.opts_);
      loaded_ = o.loaded_;
    }
    return *this;
  }
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;
  ~Skeleton() { reset(); }

  // Open the embedded object (nothing is loaded into the kernel yet). `name` is used in
  // errors and logs (e.g. "tc").
  static Result<Skeleton> open(const std::string& name) {
    Skeleton s;
    s.name_ = name;
    s.log_ = std::make_unique<std::vector<char>>(kVerifierLogSize, '\0');
    s.opts_ = detail::make_open_opts(name, *s.log_);
    errno = 0;
    S* p = S::open(s.opts_.get());
    if (p == nullptr) return errno_error("opening BPF object " + name);
    s.skel_ = p;
    return s;
  }

  // Configure before load(): map size by map name (bpf_map__set_max_entries).
  Status set_max_entries(const std::string& map_name, uint32_t n) {
    if (loaded_) return make_error("{}: set_max_entries({}) after load", name_, map_name);
    return detail::set_max_entries(skel_->obj, map_name, n);
  }
  // Configure before load(): pin a map at `path` (bpf_map__set_pin_path). At load, libbpf
  // reuses a compatible map already pinned there (so state survives restarts) or creates and
  // pins a new one; an incompatible pinned map makes load() fail with the map named.
  Status set_pin_path(const std::string& map_name, const std::string& path) {
    if (loaded_) return make_error("{}: set_pin_path({}) after load", name_, map_name);
    return detail::set_pin_path(skel_->obj, map_name, path);
  }

  // Load every program and map into the kernel. On failure the Error carries errno, the
  // object name and the tail of the verifier log (see last_log()).
  Status load() {
    if (loaded_) return make_error("{}: already loaded", name_);
    std::fill(log_->begin(), log_->end(), '\0');
    int err = S::load(skel_);
    if (err != 0) return detail::load_error(name_, err, *log_);
    loaded_ = true;
    return {};
  }

  // The verifier/BTF log captured by the last load() attempt (empty when none).
  std::string last_log() const { return log_ ? detail::log_text(*log_) : std::string(); }

  S* get() const { return skel_; }
  S* operator->() const { return skel_; }
  struct bpf_object* object() const { return skel_ ? skel_->obj : nullptr; }
  bool loaded() const { return loaded_; }
  const std::string& name() const { return name_; }

 private:
  void reset() {
    if (skel_ != nullptr) S::destroy(skel_);
    skel_ = nullptr;
    loaded_ = false;
  }
  S* skel_ = nullptr;
  std::string name_;
  std::unique_ptr<std::vector<char>> log_;  // stable address: libbpf keeps the pointer
  std::unique_ptr<struct bpf_object_open_opts> opts_;
  bool loaded_ = false;
};

// Route libbpf's own messages (warnings, debug) to spdlog ("libbpf: ..."). libbpf's print
// callback is process-wide: call once at program start (main / agent), not from libraries.
void route_libbpf_logs_to_spdlog();

}  // namespace weir::bpf
