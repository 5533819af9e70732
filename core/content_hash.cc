#include "core/content_hash.h"

namespace pp {

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::string ContentHash(const Json& doc) {
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t hash = Fnv1a64(DumpJson(doc));
  std::string out(kContentHashPrefix);
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(hash >> shift) & 0xf];
  return out;
}

std::string ModelHash(const Model& model) { return ContentHash(ModelToJson(model)); }

std::string ProfileHash(const Profile& profile) { return ContentHash(ProfileToJson(profile)); }

}  // namespace pp
