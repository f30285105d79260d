// Validates one Istio ServiceEntry document into the subset meshgate serves:
// resolution STATIC with IP endpoints.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/yaml_fields.h"

namespace meshgate::config::internal {

struct ServicePort {
  std::string name;
  uint16_t number = 0;
  std::optional<uint16_t> target_port;
};

struct WorkloadEndpoint {
  std::string address;                    // canonical IP literal
  std::map<std::string, uint16_t> ports;  // port name -> endpoint port
  std::map<std::string, std::string> labels;
  uint32_t weight = 1;
};

struct ServiceEntry {
  std::string source;  // "file:line ServiceEntry ns/name"
  struct Host {
    std::string name;  // lowercase
    int line = 0;
    std::string field;  // "spec.hosts[0]"
  };
  std::vector<Host> hosts;
  std::vector<ServicePort> ports;
  std::vector<WorkloadEndpoint> endpoints;
};

// The port an endpoint listens on for `port`: its own ports map, else the
// service's targetPort, else the service port itself.
uint16_t EndpointPort(const WorkloadEndpoint& endpoint, const ServicePort& port);

// Reads a document whose kind is ServiceEntry. The subject of `sink` must already
// name the resource. Hosts are filled in even when other fields are wrong, so
// duplicates across files are still reported; the entry is valid only if no error
// was added to `sink`.
ServiceEntry ReadServiceEntry(const YAML::Node& doc, ErrorSink& sink,
                              std::vector<std::string>& warnings);

}  // namespace meshgate::config::internal
