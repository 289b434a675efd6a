// Parsing and validation of resource files (YAML, multi-document, or JSON).
//
// Accepted input: the kinds in resources.h, plus `kind: List` (apiVersion v1) whose `items` are
// such resources, so `kubectl get -o yaml` output is read as is. Unknown fields (status,
// metadata.uid, resourceVersion, managedFields, annotations, ...) are ignored. Empty documents
// are skipped. Unknown kinds and apiVersion/kind mismatches are errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/resources.h"
#include "model/validation.h"

namespace weir::model {

// Largest resource file read, in bytes: holds 50,000 services with their EndpointSlices in a
// single file (about 38 MB in the scaling benchmark's format).
inline constexpr size_t kMaxFileBytes = size_t{64} << 20;
// Deepest nesting of mappings and lists in a document (the deepest resource weir reads nests
// about ten levels; yaml-cpp's recursion guard fires at a few hundred).
inline constexpr int kMaxNestingDepth = 100;

// One file's contents. `file` is the name used in diagnostics (DirDatastore passes the file
// name relative to its directory, e.g. "services.yaml").
struct SourceText {
  std::string file;
  std::string text;
};

// Outcome of building a snapshot: either a snapshot (no errors) or the complete list of errors.
struct SnapshotResult {
  std::optional<Snapshot> snapshot;  // set iff errors is empty
  ValidationErrors errors;           // every error found, in file/document order
  std::vector<Warning> warnings;     // also copied into snapshot->warnings when accepted

  bool ok() const { return snapshot.has_value(); }
  // The snapshot, or to_error(errors).
  Result<Snapshot> to_result() const&;
  Result<Snapshot> to_result() &&;
};

// Parses every document of one file and appends the resources to `out` (and out.files). Per
// resource errors (syntax with line/column, unknown kind, missing/invalid fields) are appended
// to `errors`; a resource with an error is not appended. Warnings go to out.warnings.
// The input is read strictly (yaml_input.h, docs/resources.md "Strict input"): a file over
// kMaxFileBytes, nesting deeper than kMaxNestingDepth, excessive aliasing, duplicate mapping
// keys and scalars of the wrong type are errors.
// Cross-resource rules are NOT checked here: see validate_snapshot().
void parse_text(const SourceText& src, Snapshot& out, ValidationErrors& errors);

// The error for a file over kMaxFileBytes, also used by DirDatastore, which
// refuses to read such a file at all.
std::string file_too_large(uint64_t bytes);

// Checks the rules that span resources and appends violations to `errors`:
// duplicate (kind, namespace, name); more than one DataplaneConfig; an EndpointSlice whose
// service does not exist; two WorkloadEndpoints claiming the same IP; two WorkloadEndpoints
// on the same node with the same interface; two Services with the same (clusterIP, port,
// protocol); the ClusterIPRules; two Nodes with the same underlayAddress; overlapping Node
// podCIDRs; a podCIDR overlapping a serviceClusterIPRange; an underlayAddress inside a
// podCIDR. Appends to `warnings`: a WorkloadEndpoint IP outside the podCIDR of its Node (when
// that Node exists).
void validate_snapshot(const Snapshot& snap, ValidationErrors& errors,
                       std::vector<Warning>& warnings);
// The same, appending the warnings to snap.warnings (as parse_text() does its own).
void validate_snapshot(Snapshot& snap, ValidationErrors& errors);

// The rules on a Service's IPv4 cluster IP that involve other resources: it lies in one of the
// DataplaneConfig's serviceClusterIPRanges (default 10.96.0.0/12), is not the network or
// broadcast address of such a range, and is no WorkloadEndpoint's IP (a Service on a pod's IP
// would take every connection to that pod). validate_snapshot() applies them; DirDatastore
// keeps one for its incremental path, where the config and the workloads do not change.
class ClusterIPRules {
 public:
  ClusterIPRules() = default;
  explicit ClusterIPRules(const Snapshot& snap);
  // Appends the violations of `svc` (none for a headless or IPv6-only service).
  void check(const Service& svc, ValidationErrors& errors) const;

 private:
  std::vector<Cidr> ranges_;
  std::unordered_map<uint32_t, std::string> pods_;  // IP -> "WorkloadEndpoint ns/name (source)"
};

// Appends the resources of `part` (one file's parse_text() output) to `into`, in order. A second
// DataplaneConfig is an error, as parse_text() reports it within one file.
void merge_parsed(Snapshot& into, const Snapshot& part, ValidationErrors& errors);

// parse_text() on every source in order, then validate_snapshot(). The result carries a
// snapshot only when there was no error at all: a load is accepted or rejected as a whole.
SnapshotResult build_snapshot(const std::vector<SourceText>& sources);

// Field-level validators, exposed for the CLI and tests.
// Kubernetes IANA_SVC_NAME: 1..15 chars of [a-z0-9-], at least one letter, no leading/trailing
// '-', no "--".
bool is_iana_svc_name(std::string_view s);
// DNS-1123 label: 1..63 chars of [a-z0-9-], alphanumeric first and last character.
bool is_dns_label(std::string_view s);
// DNS-1123 subdomain: 1..253 chars, dot-separated DNS labels.
bool is_dns_subdomain(std::string_view s);
// A Linux interface name weir accepts: 1..15 bytes, no '/', ':' or whitespace, not "." or "..".
bool is_valid_ifname(std::string_view s);

}  // namespace weir::model
