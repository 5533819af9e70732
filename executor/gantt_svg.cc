#include "executor/gantt_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

namespace pp {
namespace {

constexpr double kLeftPx = 84;  // row labels
constexpr double kRightPx = 24;
constexpr double kTitlePx = 24;   // panel title line
constexpr double kLegendPx = 22;  // step time, bubble ratio and the op key
constexpr double kRowPx = 26;
constexpr double kRowGapPx = 6;  // room for the transfer arrows between rows
constexpr double kAxisPx = 30;   // ticks and their labels
constexpr double kPanelGapPx = 18;
constexpr double kLabelCharPx = 6.6;  // a character of the 11 px label font, generously

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        out += (static_cast<unsigned char>(c) < 0x20 && c != '\t') ? ' ' : c;
    }
  }
  return out;
}

// HSL (h in degrees, s and l in [0, 1]) to "#rrggbb".
std::string Hsl(double h, double s, double l) {
  const double c = (1 - std::fabs(2 * l - 1)) * s;
  const double hp = std::fmod(h, 360.0) / 60.0;
  const double x = c * (1 - std::fabs(std::fmod(hp, 2.0) - 1));
  // (r, g, b) before lightening, per 60-degree sector of the hue circle.
  const double sectors[6][3] = {{c, x, 0}, {x, c, 0}, {0, c, x}, {0, x, c}, {x, 0, c}, {c, 0, x}};
  const double* rgb = sectors[std::clamp(static_cast<int>(hp), 0, 5)];
  const double m = l - c / 2;
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(std::lround(255 * (rgb[0] + m))),
                static_cast<int>(std::lround(255 * (rgb[1] + m))),
                static_cast<int>(std::lround(255 * (rgb[2] + m))));
  return buf;
}

// Round tick spacing (1, 2 or 5 times a power of ten) giving about eight ticks over `span`.
double TickStep(double span) {
  const double raw = span / 8;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
}

std::string TickLabel(double t, double step) {
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, t);
  return buf;
}

// Which op hands its output to which: F(c, i) feeds F(c + 1, i); B or I of (c, i) feed
// B or I of (c - 1, i). The key is (chunk, micro-batch, forward?).
using OpKey = std::tuple<int, int, bool>;

bool IsForward(OpKind k) { return k == OpKind::kForward; }
bool SendsBack(OpKind k) { return k == OpKind::kBackward || k == OpKind::kBackwardInput; }

class Painter {
 public:
  Painter(const GanttOptions& options, double max_ms)
      : options_(options), scale_(options.plot_width_px / max_ms), max_ms_(max_ms) {}

  double X(double ms) const { return kLeftPx + std::max(0.0, ms) * scale_; }

  // Draws one panel with its top at `top`; returns its height.
  double Panel(const GanttPanel& panel, double top, std::ostringstream& out) const {
    const Timeline& t = panel.timeline;
    const int rows = std::max(t.num_devices, 1);
    out << "<g class=\"panel\">\n";
    out << "<text x=\"" << Num(kLeftPx) << "\" y=\"" << Num(top + 16)
        << "\" font-size=\"14\" font-weight=\"bold\">" << Escape(panel.title) << "</text>\n";
    Legend(t, top + kTitlePx, out);
    const double rows_top = top + kTitlePx + kLegendPx;
    for (int d = 0; d < rows; ++d) {
      const double y = RowTop(rows_top, d);
      out << "<text x=\"" << Num(kLeftPx - 8) << "\" y=\"" << Num(y + kRowPx / 2 + 4)
          << "\" font-size=\"11\" text-anchor=\"end\">device " << d << "</text>\n";
      // The lane: light grey wherever no op covers it, i.e. the bubbles.
      out << "<rect class=\"lane\" x=\"" << Num(X(0)) << "\" y=\"" << Num(y) << "\" width=\""
          << Num(X(max_ms_) - X(0)) << "\" height=\"" << Num(kRowPx)
          << "\" fill=\"#f2f2f2\" stroke=\"#d0d0d0\" stroke-width=\"0.5\"/>\n";
    }
    for (const TimedOp& op : t.ops) Op(op, RowTop(rows_top, op.device), out);
    Transfers(t, rows_top, out);
    Axis(rows_top + rows * (kRowPx + kRowGapPx), out);
    out << "</g>\n";
    return kTitlePx + kLegendPx + rows * (kRowPx + kRowGapPx) + kAxisPx;
  }

 private:
  static double RowTop(double rows_top, int device) {
    return rows_top + device * (kRowPx + kRowGapPx);
  }

  int ChunkOf(const TimedOp& op) const { return options_.chunked ? op.op.chunk : op.device; }

  void Legend(const Timeline& t, double top, std::ostringstream& out) const {
    char line[160];
    std::snprintf(line, sizeof line,
                  "step time %.3f ms, bubble ratio %.2f %% (idle / busy %.2f %%)", t.step_time_ms,
                  100 * t.bubble_ratio, 100 * t.bubble_over_ideal);
    out << "<text x=\"" << Num(kLeftPx) << "\" y=\"" << Num(top + 13) << "\" font-size=\"12\">"
        << line << "</text>\n";
    double x = kLeftPx + 430;
    for (OpKind k :
         {OpKind::kForward, OpKind::kBackwardInput, OpKind::kBackwardWeight, OpKind::kBackward}) {
      out << "<rect class=\"key\" x=\"" << Num(x) << "\" y=\"" << Num(top + 3) << "\" width=\"14\""
          << " height=\"12\" fill=\"" << GanttFill(k, 0) << "\" stroke=\"#333333\""
          << " stroke-width=\"0.6\"/>\n";
      if (k == OpKind::kBackwardWeight) {
        out << "<rect class=\"hatch\" x=\"" << Num(x) << "\" y=\"" << Num(top + 3)
            << "\" width=\"14\" height=\"12\" fill=\"url(#hatch)\"/>\n";
      }
      const char* name = k == OpKind::kForward          ? "F forward"
                         : k == OpKind::kBackwardInput  ? "I input grad"
                         : k == OpKind::kBackwardWeight ? "W weight grad"
                                                        : "B backward";
      out << "<text x=\"" << Num(x + 18) << "\" y=\"" << Num(top + 13) << "\" font-size=\"11\">"
          << name << "</text>\n";
      x += 110;
    }
  }

  void Op(const TimedOp& op, double y, std::ostringstream& out) const {
    const std::string label = OpText(op.op, options_.chunked ? op.op.chunk : -1);
    const double x0 = X(op.start_ms);
    const double w = std::max(0.0, X(op.end_ms) - x0);
    const char kind = OpKindLetter(op.op.kind);
    out << "<rect class=\"op " << kind << "\" x=\"" << Num(x0) << "\" y=\"" << Num(y)
        << "\" width=\"" << Num(w) << "\" height=\"" << Num(kRowPx) << "\" fill=\""
        << GanttFill(op.op.kind, op.op.micro_batch)
        << "\" stroke=\"#333333\" stroke-width=\"0.6\"><title>device " << op.device << " " << label
        << ": " << Num(op.start_ms) << " to " << Num(op.end_ms) << " ms (input ready "
        << Num(op.ready_ms) << ")</title></rect>\n";
    if (op.op.kind == OpKind::kBackwardWeight) {
      out << "<rect class=\"hatch\" x=\"" << Num(x0) << "\" y=\"" << Num(y) << "\" width=\""
          << Num(w) << "\" height=\"" << Num(kRowPx) << "\" fill=\"url(#hatch)\"/>\n";
    }
    if (w >= label.size() * kLabelCharPx + 4) {
      out << "<text x=\"" << Num(x0 + w / 2) << "\" y=\"" << Num(y + kRowPx / 2 + 4)
          << "\" font-size=\"11\" text-anchor=\"middle\" fill=\""
          << (op.op.kind == OpKind::kForward ? "#000000" : "#ffffff") << "\">" << label
          << "</text>\n";
    }
  }

  void Transfers(const Timeline& t, double rows_top, std::ostringstream& out) const {
    std::map<OpKey, const TimedOp*> producers;
    for (const TimedOp& op : t.ops) {
      if (IsForward(op.op.kind) || SendsBack(op.op.kind)) {
        producers[{ChunkOf(op), op.op.micro_batch, IsForward(op.op.kind)}] = &op;
      }
    }
    for (const TimedOp& op : t.ops) {
      if (!IsForward(op.op.kind) && !SendsBack(op.op.kind)) continue;
      const bool forward = IsForward(op.op.kind);
      const int from_chunk = ChunkOf(op) + (forward ? -1 : 1);
      auto it = producers.find({from_chunk, op.op.micro_batch, forward});
      if (it == producers.end()) continue;
      const TimedOp& from = *it->second;
      if (std::abs(from.device - op.device) != 1) continue;  // same device, or a wrap-around
      const bool down = op.device > from.device;
      const double y1 = RowTop(rows_top, from.device) + (down ? kRowPx : 0);
      const double y2 = RowTop(rows_top, op.device) + (down ? 0 : kRowPx);
      out << "<line class=\"transfer\" x1=\"" << Num(X(from.end_ms)) << "\" y1=\"" << Num(y1)
          << "\" x2=\"" << Num(X(op.ready_ms)) << "\" y2=\"" << Num(y2)
          << "\" stroke=\"#555555\" stroke-width=\"0.8\" marker-end=\"url(#arrow)\"/>\n";
    }
  }

  void Axis(double top, std::ostringstream& out) const {
    out << "<line x1=\"" << Num(X(0)) << "\" y1=\"" << Num(top) << "\" x2=\"" << Num(X(max_ms_))
        << "\" y2=\"" << Num(top) << "\" stroke=\"#000000\" stroke-width=\"1\"/>\n";
    const double step = TickStep(max_ms_);
    for (int i = 0; i * step <= max_ms_ * (1 + 1e-9); ++i) {
      const double x = X(i * step);
      out << "<line x1=\"" << Num(x) << "\" y1=\"" << Num(top) << "\" x2=\"" << Num(x) << "\" y2=\""
          << Num(top + 5) << "\" stroke=\"#000000\" stroke-width=\"1\"/>\n";
      out << "<text x=\"" << Num(x) << "\" y=\"" << Num(top + 17)
          << "\" font-size=\"10\" text-anchor=\"middle\">" << TickLabel(i * step, step)
          << "</text>\n";
    }
    out << "<text x=\"" << Num(X(max_ms_)) << "\" y=\"" << Num(top + 28)
        << "\" font-size=\"10\" text-anchor=\"end\">time (ms)</text>\n";
  }

  const GanttOptions& options_;
  double scale_;  // px per ms
  double max_ms_;
};

}  // namespace

std::string GanttFill(OpKind kind, int micro_batch) {
  // Golden-angle hues keep neighbouring micro-batches apart.
  const double hue = std::fmod(std::max(micro_batch, 0) * 137.508, 360.0);
  switch (kind) {
    case OpKind::kForward:
      return Hsl(hue, 0.70, 0.78);
    case OpKind::kBackwardInput:
    case OpKind::kBackwardWeight:
      return Hsl(hue, 0.60, 0.52);
    case OpKind::kBackward:
      return Hsl(hue, 0.65, 0.36);
  }
  return "#000000";
}

std::string GanttSvg(const std::vector<GanttPanel>& panels, const GanttOptions& options) {
  double max_ms = 0;
  double height = 10;
  for (const GanttPanel& p : panels) {
    max_ms = std::max(max_ms, p.timeline.step_time_ms);
    for (const TimedOp& op : p.timeline.ops) max_ms = std::max(max_ms, op.end_ms);
    height += kTitlePx + kLegendPx + std::max(p.timeline.num_devices, 1) * (kRowPx + kRowGapPx) +
              kAxisPx + kPanelGapPx;
  }
  if (!(max_ms > 0)) max_ms = 1;  // an empty step still gets an axis
  const double width = kLeftPx + options.plot_width_px + kRightPx;
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << Num(width)
      << "\" height=\"" << Num(height) << "\" viewBox=\"0 0 " << Num(width) << " " << Num(height)
      << "\" font-family=\"sans-serif\">\n"
      << "<defs>\n"
      << "<pattern id=\"hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\""
      << " patternTransform=\"rotate(45)\"><rect class=\"hatch-line\" x=\"0\" y=\"0\" width=\"2\""
      << " height=\"6\" fill=\"#ffffff\" fill-opacity=\"0.55\"/></pattern>\n"
      << "<marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\""
      << " markerHeight=\"6\" orient=\"auto\"><path d=\"M 0 0 L 10 5 L 0 10 z\""
      << " fill=\"#555555\"/></marker>\n"
      << "</defs>\n"
      << "<rect class=\"background\" x=\"0\" y=\"0\" width=\"" << Num(width) << "\" height=\""
      << Num(height) << "\" fill=\"#ffffff\"/>\n";
  const Painter painter(options, max_ms);
  double top = 10;
  for (const GanttPanel& p : panels) top += painter.Panel(p, top, out) + kPanelGapPx;
  out << "</svg>\n";
  return out.str();
}

}  // namespace pp
