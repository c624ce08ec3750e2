// `kiln ops`: the operators this build of Kiln runs, with their opset ranges,
// straight from the op registry (the source of docs/CONFORMANCE.md's table).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "commands.h"
#include "ops/registry.h"

namespace kiln::cli {
namespace {

struct OpRange {
  std::string domain;
  std::string name;
  std::vector<std::pair<int, int>> versions;  // (since, until); until 0 = current
};

std::vector<OpRange> collect() {
  std::map<std::pair<std::string, std::string>, OpRange> by_op;
  for (const auto& def : ops::Registry::global().all()) {
    auto key = std::make_pair(std::string(def.domain), std::string(def.name));
    OpRange& r = by_op[key];
    r.domain = key.first;
    r.name = key.second;
    r.versions.emplace_back(def.since_version, def.until_version);
  }
  std::vector<OpRange> out;
  for (auto& [_, r] : by_op) {
    std::sort(r.versions.begin(), r.versions.end());
    out.push_back(std::move(r));
  }
  return out;
}

std::string range_text(const OpRange& r) {
  std::string s;
  for (const auto& [since, until] : r.versions) {
    if (!s.empty()) s += ", ";
    s += until == 0 ? fmt::format("{}+", since) : fmt::format("{}-{}", since, until);
  }
  return s;
}

}  // namespace

void add_ops_command(CLI::App& app, int* exit_code) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("ops", "List the operators Kiln runs, with their opset ranges");
  sub->add_flag("--json", *json, "print a JSON array instead of text");
  sub->callback([json, exit_code] {
    std::vector<OpRange> ops = collect();
    if (*json) {
      std::printf("[");
      for (size_t i = 0; i < ops.size(); ++i) {
        std::string versions;
        for (const auto& [since, until] : ops[i].versions) {
          versions += fmt::format("{}{{\"since\":{},\"until\":{}}}", versions.empty() ? "" : ",", since, until);
        }
        std::printf("%s\n  {\"domain\":\"%s\",\"op\":\"%s\",\"versions\":[%s]}", i ? "," : "", ops[i].domain.c_str(),
                    ops[i].name.c_str(), versions.c_str());
      }
      std::printf("\n]\n");
    } else {
      for (const auto& r : ops) {
        std::string name = r.domain.empty() ? r.name : r.domain + "." + r.name;
        std::printf("%-40s opset %s\n", name.c_str(), range_text(r).c_str());
      }
      std::printf("%zu operators\n", ops.size());
    }
    *exit_code = 0;
  });
}

}  // namespace kiln::cli
