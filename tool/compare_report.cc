#include "tool/compare_report.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "core/units.h"

namespace pp {
namespace {

std::string Value(const FigureComparison& f, double v) {
  if (f.unit == "ms") return FormatMs(v);
  if (f.unit == "ratio") return Printf("%.2f %%", 100 * v);
  if (f.unit == "bytes") return FormatBytes(static_cast<uint64_t>(v));
  return Printf("%.1f", v) + " " + f.unit;
}

std::string Change(double from, double to) {
  if (from == to) return "=";
  if (from <= 0) return "new";
  return Printf("%+.2f%%", 100.0 * (to - from) / from);
}

std::string Verdict(const PlanComparison& c) {
  return c.regressed() ? "REGRESSION" : "ok (no regression beyond " + Printf("%.2f%%", 100 * c.tolerance) + ")";
}

std::string Layer(const PlanComparison& c, int index) {
  if (index < 0) return "none";
  return std::to_string(index) + " (" + c.layer_names[index] + ")";
}

std::string StageCells(const PlanComparison& c, const std::optional<StagePlan>& s, bool over,
                       const char* sep) {
  if (!s) return std::string("-") + sep + "-" + sep + "-";
  return c.layer_names[s->first_layer] + ".." + c.layer_names[s->last_layer] + sep +
         FormatMs(s->forward_ms + s->backward_ms) + sep + FormatBytes(s->peak_memory_bytes) +
         (over ? " OVER" : "");
}

// Rows of cells as left-aligned columns two spaces apart.
std::string Columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i >= width.size()) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::vector<std::string> StageColumns(const PlanComparison& c, const std::optional<StagePlan>& s,
                                      bool over) {
  if (!s) return {"-", "-", "-"};
  return {c.layer_names[s->first_layer] + ".." + c.layer_names[s->last_layer],
          FormatMs(s->forward_ms + s->backward_ms),
          FormatBytes(s->peak_memory_bytes) + (over ? " OVER" : "")};
}

std::string MovedText(const PlanComparison& c) {
  if (c.moved.empty()) return "boundaries: unchanged\n";
  std::string out = "boundaries moved:\n";
  for (const BoundaryMove& m : c.moved) {
    out += "  boundary " + std::to_string(m.index) + ": " + Layer(c, m.base_layer) + " -> " +
           Layer(c, m.next_layer) + "\n";
  }
  return out;
}

}  // namespace

std::string CompareText(const PlanComparison& c) {
  std::ostringstream out;
  out << "compare: model " << c.model << (c.inputs_changed ? " (inputs changed)" : "")
      << ", tolerance " << Printf("%.2f%%", 100 * c.tolerance) << "\n\n";
  std::vector<std::vector<std::string>> rows = {
      {"stage", "BASE layers", "fwd+bwd", "peak memory", "NEW layers", "fwd+bwd", "peak memory",
       ""}};
  for (const StageComparison& s : c.stages) {
    std::vector<std::string> row = {std::to_string(s.index)};
    for (std::string& cell : StageColumns(c, s.base, s.base_over_limit)) row.push_back(cell);
    for (std::string& cell : StageColumns(c, s.next, s.next_over_limit)) row.push_back(cell);
    row.push_back(s.memory_regressed ? "<- memory regression" : "");
    rows.push_back(std::move(row));
  }
  out << Columns(rows);
  out << "\n";
  for (const FigureComparison& f : c.overall) {
    out << "  " << f.label << ": " << Value(f, f.base) << " -> " << Value(f, f.next) << " ("
        << Change(f.base, f.next) << ")" << (f.judged ? " [judged]" : "")
        << (f.regressed ? " REGRESSION" : "") << "\n";
  }
  out << "\n" << MovedText(c) << "verdict: " << Verdict(c) << "\n";
  for (const std::string& r : c.regressions) out << "  " << r << "\n";
  return out.str();
}

std::string CompareMarkdown(const PlanComparison& c) {
  std::ostringstream out;
  out << "### Pipeline plan comparison: " << c.model << "\n\n**Verdict: " << Verdict(c)
      << "**\n\n";
  for (const std::string& r : c.regressions) out << "- " << r << "\n";
  if (c.regressed()) out << "\n";
  out << "| figure | BASE | NEW | change |\n|---|---:|---:|---:|\n";
  for (const FigureComparison& f : c.overall) {
    out << "| " << f.label << (f.judged ? " (judged)" : "") << " | " << Value(f, f.base)
        << " | " << Value(f, f.next) << " | " << Change(f.base, f.next)
        << (f.regressed ? " ❌" : "") << " |\n";
  }
  out << "\n| stage | BASE layers | BASE time | BASE memory | NEW layers | NEW time | NEW "
         "memory |\n|---:|---|---:|---:|---|---:|---:|\n";
  for (const StageComparison& s : c.stages) {
    out << "| " << s.index << " | " << StageCells(c, s.base, s.base_over_limit, " | ") << " | "
        << StageCells(c, s.next, s.next_over_limit, " | ") << " |\n";
  }
  out << "\n" << MovedText(c);
  return out.str();
}

Json CompareJson(const PlanComparison& c) {
  Json doc;
  doc["format"] = kCompareFormat;
  doc["model"] = c.model;
  doc["tolerance"] = c.tolerance;
  doc["verdict"] = c.regressed() ? "regression" : "ok";
  doc["regressions"] = c.regressions;
  doc["inputs_changed"] = c.inputs_changed;
  Json overall = Json::array();
  for (const FigureComparison& f : c.overall) {
    overall.push_back({{"key", f.key}, {"label", f.label}, {"unit", f.unit}, {"base", f.base},
                       {"new", f.next}, {"judged", f.judged}, {"regressed", f.regressed}});
  }
  doc["overall"] = std::move(overall);
  Json stages = Json::array();
  auto stage_json = [](const std::optional<StagePlan>& s, bool over) {
    if (!s) return Json(nullptr);
    return Json{{"first_layer", s->first_layer}, {"last_layer", s->last_layer},
                {"forward_ms", s->forward_ms},   {"backward_ms", s->backward_ms},
                {"peak_memory_bytes", s->peak_memory_bytes}, {"over_limit", over}};
  };
  for (const StageComparison& s : c.stages) {
    stages.push_back({{"index", s.index},
                      {"base", stage_json(s.base, s.base_over_limit)},
                      {"new", stage_json(s.next, s.next_over_limit)},
                      {"memory_regressed", s.memory_regressed}});
  }
  doc["stages"] = std::move(stages);
  Json moved = Json::array();
  for (const BoundaryMove& m : c.moved) {
    moved.push_back({{"index", m.index},
                     {"base", m.base_layer < 0 ? Json(nullptr) : Json(m.base_layer)},
                     {"new", m.next_layer < 0 ? Json(nullptr) : Json(m.next_layer)}});
  }
  doc["moved_boundaries"] = std::move(moved);
  return doc;
}

int ReportComparison(const PlanComparison& c, const std::string& format, std::ostream& out) {
  if (format == "json") out << DumpJson(CompareJson(c));
  else if (format == "md") out << CompareMarkdown(c);
  else out << CompareText(c);
  out.flush();
  for (const std::string& r : c.regressions) std::cerr << "pp-partition: regression: " << r << "\n";
  return c.regressed() ? 1 : 0;
}

}  // namespace pp
