// Content hashes that let a plan say which model and profile it was planned from, so a CI
// diff of two plans shows whether the inputs changed.
//
// The hash is FNV-1a 64 over the canonical text of a document: DumpJson of its JSON form
// (insertion-ordered keys, shortest round-trip numbers, two-space indent, trailing newline).
// It is written as "fnv1a64:" followed by 16 lowercase hex digits. FNV-1a is not a
// cryptographic hash: it detects accidental change, not tampering.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/json_util.h"
#include "core/model.h"
#include "core/profile.h"

namespace pp {

inline constexpr std::string_view kContentHashPrefix = "fnv1a64:";

// FNV-1a 64 of `bytes` (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
uint64_t Fnv1a64(std::string_view bytes);

// "fnv1a64:" + 16 hex digits of Fnv1a64(DumpJson(doc)).
std::string ContentHash(const Json& doc);

std::string ModelHash(const Model& model);        // over ModelToJson(model)
std::string ProfileHash(const Profile& profile);  // over ProfileToJson(profile)

}  // namespace pp
