// A fake dataplane::TunnelOps for unit tests: interfaces by address, attachments by name, the
// last plan written, and a log of the calls.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "dataplane/tunnel_sync.h"

namespace weir::dataplane::test {

struct FakeTunnel : TunnelOps {
  std::map<model::Ipv4, UnderlayIf> addresses;
  std::optional<UnderlayIf> found;  // what find_attached() reports
  std::set<std::string> attached;
  calc::TunnelPlan written;
  int written_ifindex = -1;
  bool fail_attach = false;
  std::vector<std::string> log;

  Result<UnderlayIf> interface_of(model::Ipv4 addr) override {
    auto it = addresses.find(addr);
    if (it == addresses.end()) return Error{ENOENT, "no interface has " + addr.str()};
    return it->second;
  }
  Status attach(const UnderlayIf& itf) override {
    if (fail_attach) return Error{EPERM, "attach refused"};
    log.push_back("attach " + itf.name);
    attached.insert(itf.name);
    return {};
  }
  Status detach(const UnderlayIf& itf) override {
    log.push_back("detach " + itf.name);
    attached.erase(itf.name);
    return {};
  }
  Result<std::optional<UnderlayIf>> find_attached() override {
    log.push_back("find");
    return found;
  }
  Status write(const calc::TunnelPlan& plan, int underlay_ifindex) override {
    log.push_back("write");
    written = plan;
    written_ifindex = underlay_ifindex;
    return {};
  }
};

}  // namespace weir::dataplane::test
