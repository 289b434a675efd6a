// Names for the addresses of a flow record (`weir observe`, docs/observe.md): the pod behind an
// address and the service behind a frontend, as the last applied calc output has them. Pure: the
// agent rebuilds it after each sync and names each flow as it arrives, so a record keeps the
// names of its moment.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "calc/calc.h"
#include "model/flow.h"

namespace weir::calc {

class FlowNamer {
 public:
  // Indexes `out`: every workload address (its routes: local and remote pods) and every frontend.
  void update(const Output& out);

  // Fills in the pod (namespace and name) of source, destination and translated, and the
  // service of the destination when it is a frontend (address, port and protocol), leaving
  // what it does not know empty.
  void name(model::Flow& f) const;

 private:
  std::map<model::Ipv4, std::pair<std::string, std::string>> pods_;  // ip -> (ns, name)
  std::map<FrontendKey, std::pair<std::string, std::string>> services_;  // frontend -> (ns, name)
};

// "ns/name" -> ("ns", "name"); a string without '/' -> ("", s).
std::pair<std::string, std::string> split_ns_name(const std::string& s);

}  // namespace weir::calc
