// The SVG Gantt chart: its structure against the timeline it draws (one op rectangle per op,
// widths proportional to durations, one arrow per transfer between neighbouring devices),
// XML well-formedness, and a rendering to PNG (rsvg-convert) whose pixels carry the ops'
// fill colours.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#ifdef PP_HAVE_ZLIB
#include <zlib.h>
#endif

#include "executor/gantt_svg.h"
#include "executor/schedule.h"
#include "executor/simulator.h"
#include "tests/test_util.h"

namespace pp {
namespace {

ChunkTimes Times(int chunks, double f, double b, double t) {
  ChunkTimes times;
  for (int c = 0; c < chunks; ++c) {
    times.forward_ms.push_back(f * (1 + 0.25 * (c % 3)));
    times.backward_ms.push_back(b * (1 + 0.25 * (c % 2)));
  }
  times.transfer_ms.assign(chunks - 1, t);
  return times;
}

Timeline Simulated(const std::string& name, int p, int m, double transfer = 0.2) {
  const Schedule s = *BuildSchedule(name, p, m);
  Result<Timeline> t = Simulate(s, Times(NumChunks(s), 1.0, 2.0, transfer));
  EXPECT_TRUE(t.ok()) << t.message();
  return *t;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The op rectangles in document order: (x, width).
std::vector<std::pair<double, double>> OpRects(const std::string& svg) {
  static const std::regex kRect(
      R"re(<rect class="op [FBIW]" x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)")re");
  std::vector<std::pair<double, double>> rects;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), kRect); it != std::sregex_iterator();
       ++it) {
    rects.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  }
  return rects;
}

// Well-formedness by python3's XML parser when there is one, else a balance of open and close
// tags (comments and declarations aside).
void ExpectWellFormed(const std::string& svg) {
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/g.svg", svg);
  if (std::system("python3 -c 'import xml.etree.ElementTree' >/dev/null 2>&1") == 0) {
    const int rc = std::system(("python3 -c 'import sys, xml.etree.ElementTree as E; "
                                "E.parse(sys.argv[1])' '" +
                                dir + "/g.svg'")
                                   .c_str());
    EXPECT_EQ(rc, 0) << "python3 could not parse the SVG";
  } else {
    std::vector<std::string> open;
    static const std::regex kTag(R"(<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>)");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), kTag); it != std::sregex_iterator();
         ++it) {
      if ((*it)[3] == "/") continue;
      if ((*it)[1] == "/") {
        ASSERT_FALSE(open.empty());
        EXPECT_EQ(open.back(), (*it)[2]);
        open.pop_back();
      } else {
        open.push_back((*it)[2]);
      }
    }
    EXPECT_TRUE(open.empty());
  }
  std::filesystem::remove_all(dir);
}

TEST(GanttSvg, OneRectanglePerOpWithWidthsProportionalToDurations) {
  const Timeline t = Simulated("1f1b", 3, 4);
  const std::string svg = GanttSvg({{"1f1b <p=3> & m=4", t}});
  ASSERT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("1f1b &lt;p=3&gt; &amp; m=4"), std::string::npos);  // escaped title
  const auto rects = OpRects(svg);
  ASSERT_EQ(rects.size(), t.ops.size());
  EXPECT_EQ(Count(svg, "<rect class=\"op F\""), 3u * 4);
  EXPECT_EQ(Count(svg, "<rect class=\"op B\""), 3u * 4);
  // Same scale for every op: width / duration is one constant, and so is (x - x0) / start.
  // The scale comes from the earliest and the latest op (the longest span, so the 0.01 px
  // rounding of the coordinates matters least).
  size_t first = 0, last = 0;
  for (size_t i = 0; i < t.ops.size(); ++i) {
    if (t.ops[i].start_ms < t.ops[first].start_ms) first = i;
    if (t.ops[i].start_ms > t.ops[last].start_ms) last = i;
  }
  const double scale = (rects[last].first - rects[first].first) /
                       (t.ops[last].start_ms - t.ops[first].start_ms);
  const double x0 = rects[first].first - scale * t.ops[first].start_ms;
  for (size_t i = 0; i < rects.size(); ++i) {
    EXPECT_NEAR(rects[i].second, scale * (t.ops[i].end_ms - t.ops[i].start_ms), 0.02) << i;
    EXPECT_NEAR(rects[i].first, x0 + scale * t.ops[i].start_ms, 0.02) << i;
  }
  // Each forward and each backward crosses p - 1 boundaries: 2 (p - 1) m arrows.
  EXPECT_EQ(Count(svg, "<line class=\"transfer\""), 2u * 2 * 4);
  EXPECT_NE(svg.find("step time"), std::string::npos);
  ExpectWellFormed(svg);
}

TEST(GanttSvg, SplitBackwardAndChunksAreLabelledAndLinked) {
  // zbv: 2p chunks in a V; the turn at device p - 1 is no transfer, so each micro-batch's
  // forward and input gradient each cross 2 (p - 1) device boundaries.
  const int p = 3, m = 6;
  const Timeline t = Simulated("zbv", p, m);
  GanttOptions options;
  options.chunked = true;
  const std::string svg = GanttSvg({{"zbv", t}}, options);
  EXPECT_EQ(OpRects(svg).size(), t.ops.size());
  EXPECT_EQ(Count(svg, "<rect class=\"op W\""), 2u * p * m);
  EXPECT_EQ(Count(svg, "<rect class=\"hatch\""), 2u * p * m + 1);  // + the legend key
  EXPECT_EQ(Count(svg, "<line class=\"transfer\""), 2u * 2 * (p - 1) * m);
  EXPECT_NE(svg.find("<title>device 0 5I"), std::string::npos);  // chunk 5 = 2p - 1 on device 0
  ExpectWellFormed(svg);
}

TEST(GanttSvg, PanelsShareOneTimeScale) {
  Timeline shorter = Simulated("gpipe", 2, 2, 0);
  Timeline longer = Simulated("gpipe", 2, 4, 0);
  const std::string svg = GanttSvg({{"short", shorter}, {"long", longer}});
  EXPECT_EQ(Count(svg, "<g class=\"panel\">"), 2u);
  const auto rects = OpRects(svg);
  ASSERT_EQ(rects.size(), shorter.ops.size() + longer.ops.size());
  // The first F of both panels lasts the same, so it is drawn equally wide.
  EXPECT_NEAR(rects[0].second, rects[shorter.ops.size()].second, 1e-9);
  ExpectWellFormed(GanttSvg({{"empty", Timeline{}}}));
}

// ---- Rendering -------------------------------------------------------------------------------

uint32_t BigEndian(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

struct Png {
  uint32_t width = 0, height = 0;
  int color_type = 0, bit_depth = 0;
  std::string idat;  // the concatenated compressed image data
};

Png ReadPng(const std::string& bytes) {
  Png png;
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  for (size_t at = 8; at + 8 <= bytes.size();) {
    const uint32_t length = BigEndian(bytes, at);
    const std::string type = bytes.substr(at + 4, 4);
    if (type == "IHDR") {
      png.width = BigEndian(bytes, at + 8);
      png.height = BigEndian(bytes, at + 12);
      png.bit_depth = uint8_t(bytes[at + 16]);
      png.color_type = uint8_t(bytes[at + 17]);
    } else if (type == "IDAT") {
      png.idat += bytes.substr(at + 8, length);
    }
    at += 12 + length;
  }
  return png;
}

#ifdef PP_HAVE_ZLIB
// Decodes 8-bit RGB or RGBA pixels (no interlacing) to 0xRRGGBB values; empty on failure.
std::vector<uint32_t> Pixels(const Png& png) {
  const int channels = png.color_type == 6 ? 4 : png.color_type == 2 ? 3 : 0;
  if (channels == 0 || png.bit_depth != 8) return {};
  const size_t stride = size_t{png.width} * channels;
  std::vector<uint8_t> raw((stride + 1) * png.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(png.idat.data()),
                 png.idat.size()) != Z_OK) {
    return {};
  }
  std::vector<uint8_t> prev(stride, 0), row(stride);
  std::vector<uint32_t> pixels;
  for (uint32_t y = 0; y < png.height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(channels) ? row[i - channels] : 0, b = prev[i];
      const int c = i >= size_t(channels) ? prev[i - channels] : 0;
      int predictor = 0;
      if (filter == 1) predictor = a;
      if (filter == 2) predictor = b;
      if (filter == 3) predictor = (a + b) / 2;
      if (filter == 4) {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      row[i] = uint8_t(in[i] + predictor);
    }
    for (uint32_t x = 0; x < png.width; ++x) {
      const uint8_t* px = &row[x * channels];
      pixels.push_back((uint32_t(px[0]) << 16) | (uint32_t(px[1]) << 8) | px[2]);
    }
    prev = row;
  }
  return pixels;
}
#endif

TEST(GanttSvg, RendersToAPngThatShowsTheOps) {
  if (std::system("rsvg-convert --version >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "rsvg-convert not found (Debian package librsvg2-bin)";
  }
  const int p = 4, m = 6;
  const Timeline t = Simulated("1f1b", p, m);
  const std::string svg = GanttSvg({{"render", t}});
  const std::string dir = testing::TempDir();
  testing::WriteText(dir + "/g.svg", svg);
  ASSERT_EQ(std::system(("rsvg-convert -f png -o '" + dir + "/g.png' '" + dir + "/g.svg'").c_str()),
            0);
  const Png png = ReadPng(testing::ReadText(dir + "/g.png"));
  std::filesystem::remove_all(dir);
  // The image has the size the document declares.
  std::smatch size;
  ASSERT_TRUE(std::regex_search(
      svg, size, std::regex(R"re(<svg [^>]*width="([0-9.]+)" height="([0-9.]+)")re")));
  EXPECT_EQ(png.width, static_cast<uint32_t>(std::lround(std::stod(size[1]))));
  EXPECT_EQ(png.height, static_cast<uint32_t>(std::lround(std::stod(size[2]))));
#ifdef PP_HAVE_ZLIB
  const std::vector<uint32_t> pixels = Pixels(png);
  ASSERT_EQ(pixels.size(), size_t{png.width} * png.height) << "PNG not decoded";
  std::map<uint32_t, size_t> count;
  for (uint32_t px : pixels) ++count[px];
  // Every micro-batch's F and B fill shows up in the picture, over many pixels.
  for (int i = 0; i < m; ++i) {
    for (OpKind k : {OpKind::kForward, OpKind::kBackward}) {
      const uint32_t rgb = std::stoul(GanttFill(k, i).substr(1), nullptr, 16);
      EXPECT_GT(count[rgb], 100u) << OpKindLetter(k) << i << " " << GanttFill(k, i);
    }
  }
  EXPECT_GT(count.size(), size_t{2} * m);
  // And no single colour (the background) covers nearly everything.
  size_t most = 0;
  for (const auto& [rgb, n] : count) most = std::max(most, n);
  EXPECT_LT(most, pixels.size() * 9 / 10);
#else
  GTEST_SKIP() << "built without zlib: the PNG's size was checked, its pixels were not";
#endif
}

}  // namespace
}  // namespace pp
