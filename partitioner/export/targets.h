// The export targets, one per file; exporter.cc lists them in its table.
#pragma once

#include "partitioner/export/exporter.h"

namespace pp {

const Exporter& MegatronExporter();
const Exporter& DeepSpeedExporter();
const Exporter& TorchExporter();
const Exporter& GpipeExporter();
const Exporter& TorchTitanExporter();
const Exporter& JsonExporter();
const Exporter& MarkdownExporter();

}  // namespace pp
