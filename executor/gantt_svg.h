// Gantt charts of pipeline timelines as self-contained SVG 1.1 (no scripts, no external
// fonts or images): one panel per timeline, one row per device, one <rect class="op ..."> per
// op coloured by micro-batch, arrows for the transfers between neighbouring devices, a time
// axis in ms and a legend line with the step time and bubble ratio. docs/pictures.md says how
// to read one.
#pragma once

#include <string>
#include <vector>

#include "executor/simulator.h"

namespace pp {

struct GanttPanel {
  std::string title;  // plain text; escaped when drawn
  Timeline timeline;
};

struct GanttOptions {
  // Label ops with their chunk ("5F3") and link transfers by PipelineOp::chunk; otherwise
  // ("F3") the chunk of an op is its device.
  bool chunked = false;
  double plot_width_px = 1000;  // width of the time axis; every panel shares one scale
};

// The whole document (starts with the XML declaration, ends with a newline). Ops with a
// negative duration are drawn with zero width. Panels with no ops still get their axis.
std::string GanttSvg(const std::vector<GanttPanel>& panels, const GanttOptions& options = {});

// The fill colour ("#rrggbb") of an op of `kind` on `micro_batch`: one hue per micro-batch,
// light for F, medium for I and W (W is also hatched), dark for B.
std::string GanttFill(OpKind kind, int micro_batch);

}  // namespace pp
