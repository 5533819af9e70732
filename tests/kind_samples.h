// Small random models, one kind at a time, for the tests that check every registered layer
// kind (core/layer_kinds.h) against its implementations: the layer of the kind under test sits
// at `index` of the expanded layers, after whatever it needs (an embedding for a token model,
// a layer to tie to). A kind without a sample here fails to compile (-Wswitch).
#pragma once

#include <cstddef>
#include <random>

#include "core/json_util.h"
#include "core/model.h"

namespace pp::testing {

struct KindSample {
  Json doc;          // a model document
  size_t index = 0;  // the expanded layer of the kind
};

// Shapes drawn from `rng`: widths up to about ten, micro-batches of 1-4 rows (1-6 tokens
// each), optional fields given or left out at random.
KindSample RandomKindSample(LayerKind kind, std::mt19937_64& rng);

}  // namespace pp::testing
