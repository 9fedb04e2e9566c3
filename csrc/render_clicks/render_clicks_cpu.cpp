// CPU twin of the click-rendering op (see render_clicks.h for the semantics).
//
// The image is rendered row by row: each row accumulates in a float64 row buffer (so sums of
// many overlapping Gaussians round like the float64 reference), then is clipped and written
// out once; every pixel no click or stroke window covers is written as 0 directly. Only
// pixels within kClickTruncate * sigma of a click's or a segment's bounding box are evaluated.
#include "render_clicks/render_clicks.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/parallel.h"

namespace ivos {
namespace {

// Half-open index range [lo, hi).
struct Range {
  int64_t lo = 0, hi = 0;
  bool contains(int64_t i) const { return lo <= i && i < hi; }
  int64_t size() const { return hi > lo ? hi - lo : 0; }
};

// Pixel centres (0..size-1) within `radius` of the interval [c_lo, c_hi]. Computed in double
// and clamped before the integer conversion, so coordinates far outside cannot overflow.
Range window(double c_lo, double c_hi, double radius, int64_t size) {
  double lo = std::max(0.0, std::ceil(c_lo - radius));
  double hi = std::min(static_cast<double>(size), std::floor(c_hi + radius) + 1.0);
  if (!(lo < hi)) return {};
  return {static_cast<int64_t>(lo), static_cast<int64_t>(hi)};
}

// The truncated, shifted Gaussian g as a function of exp(-d^2 / 2 sigma^2).
struct Gaussian {
  double inv_two_sigma2, radius, radius2, floor, scale;
  explicit Gaussian(double sigma)
      : inv_two_sigma2(1.0 / (2.0 * sigma * sigma)),
        radius(kClickTruncate * sigma),
        radius2(radius * radius),
        floor(std::exp(-0.5 * kClickTruncate * kClickTruncate)),
        scale(1.0 / (1.0 - floor)) {}
  double from_exp(double e) const { return (e - floor) * scale; }
  double from_dist2(double d2) const { return from_exp(std::exp(-d2 * inv_two_sigma2)); }
};

// A click ready for row-wise rendering. exp(-(dx^2+dy^2)/2s^2) = exp(-dx^2/2s^2) exp(-dy^2/2s^2),
// so each click keeps one table of the column factor and each row costs one exp per click.
struct PreparedClick {
  Range rows, cols;
  double x, y, sign;
  size_t table;  // offset of cols.size() column factors in Prepared::col_exp
};

// One polyline segment a + t (dx, dy), t in [0, 1], and its window.
struct PreparedSegment {
  Range rows, cols;
  double ax, ay, dx, dy, inv_len2;  // inv_len2 = 0 for a point (zero-length segment)
};

struct PreparedStroke {
  Range rows, cols;
  double sign;
  size_t first_segment, num_segments;
};

// The window (rows x columns) of one click or stroke.
struct Cover {
  Range rows, cols;
};

struct Prepared {
  Gaussian gauss;
  std::vector<PreparedClick> clicks;
  std::vector<double> col_exp;
  std::vector<PreparedSegment> segments;
  std::vector<PreparedStroke> strokes;
  std::vector<Cover> covers;  // every click's and stroke's window, sorted by first column
  double work = 0;  // estimated pixel evaluations, to decide on threading
};

bool is_finite_xy(const float* p) { return std::isfinite(p[0]) && std::isfinite(p[1]); }

void prepare_clicks(const ClickInputs& in, int64_t height, int64_t width, Prepared& p) {
  const double r = p.gauss.radius;
  for (int64_t k = 0; k < in.num_clicks; ++k) {
    const float* c = in.clicks + 3 * k;
    PreparedClick pc{window(c[1], c[1], r, height), window(c[0], c[0], r, width), c[0], c[1],
                     c[2] > 0.5f ? 1.0 : -1.0, p.col_exp.size()};
    if (pc.rows.size() == 0 || pc.cols.size() == 0) continue;
    for (int64_t j = pc.cols.lo; j < pc.cols.hi; ++j) {
      double dx = static_cast<double>(j) - pc.x;
      p.col_exp.push_back(std::exp(-dx * dx * p.gauss.inv_two_sigma2));
    }
    p.work += static_cast<double>(pc.rows.size()) * pc.cols.size();
    p.clicks.push_back(pc);
  }
}

PreparedSegment prepare_segment(const float* a, const float* b, double r, int64_t height,
                                int64_t width) {
  PreparedSegment s;
  s.ax = a[0];
  s.ay = a[1];
  s.dx = static_cast<double>(b[0]) - s.ax;
  s.dy = static_cast<double>(b[1]) - s.ay;
  double len2 = s.dx * s.dx + s.dy * s.dy;
  s.inv_len2 = len2 > 0.0 ? 1.0 / len2 : 0.0;
  s.rows = window(std::min<double>(a[1], b[1]), std::max<double>(a[1], b[1]), r, height);
  s.cols = window(std::min<double>(a[0], b[0]), std::max<double>(a[0], b[0]), r, width);
  return s;
}

void prepare_strokes(const ClickInputs& in, int64_t height, int64_t width, Prepared& p) {
  const double r = p.gauss.radius;
  for (int64_t s = 0; s < in.num_strokes; ++s) {
    const float* pts = in.stroke_points + 2 * in.stroke_offsets[s];
    const int64_t m = in.stroke_offsets[s + 1] - in.stroke_offsets[s];
    double x_lo = pts[0], x_hi = pts[0], y_lo = pts[1], y_hi = pts[1];
    for (int64_t k = 1; k < m; ++k) {
      x_lo = std::min<double>(x_lo, pts[2 * k]);
      x_hi = std::max<double>(x_hi, pts[2 * k]);
      y_lo = std::min<double>(y_lo, pts[2 * k + 1]);
      y_hi = std::max<double>(y_hi, pts[2 * k + 1]);
    }
    PreparedStroke ps{window(y_lo, y_hi, r, height), window(x_lo, x_hi, r, width),
                      in.stroke_labels[s] == 1 ? 1.0 : -1.0, p.segments.size(), 0};
    if (ps.rows.size() == 0 || ps.cols.size() == 0) continue;
    // A single point is a zero-length segment; otherwise one segment per consecutive pair.
    for (int64_t k = 0; k < std::max<int64_t>(1, m - 1); ++k) {
      PreparedSegment seg = prepare_segment(pts + 2 * k, pts + 2 * std::min(k + 1, m - 1), r,
                                            height, width);
      if (seg.rows.size() == 0 || seg.cols.size() == 0) continue;
      p.work += static_cast<double>(seg.rows.size()) * seg.cols.size();
      p.segments.push_back(seg);
    }
    ps.num_segments = p.segments.size() - ps.first_segment;
    p.work += static_cast<double>(ps.rows.size()) * ps.cols.size();
    p.strokes.push_back(ps);
  }
}

// Columns [lo, hi) within c.cols where dx^2 + dy2 < radius2, the same test as the reference:
// sqrt gives the chord, then the ends are nudged so rounding cannot add or drop a column.
Range chord(const PreparedClick& c, double dy2, double radius2) {
  const auto inside = [&](int64_t j) {
    const double dx = static_cast<double>(j) - c.x;
    return dx * dx + dy2 < radius2;
  };
  const double half = std::sqrt(radius2 - dy2);
  Range r{std::clamp(static_cast<int64_t>(std::ceil(c.x - half)), c.cols.lo, c.cols.hi),
          std::clamp(static_cast<int64_t>(std::floor(c.x + half)) + 1, c.cols.lo, c.cols.hi)};
  while (r.lo > c.cols.lo && inside(r.lo - 1)) --r.lo;
  while (r.lo < r.hi && !inside(r.lo)) ++r.lo;
  while (r.hi < c.cols.hi && inside(r.hi)) ++r.hi;
  while (r.hi > r.lo && !inside(r.hi - 1)) --r.hi;
  return r;
}

// Adds every click covering row i into acc (width entries). Within the chord,
// sign * g = sign * scale * (ex * ey - floor) is one multiply-add per pixel.
void add_clicks_row(const Prepared& p, int64_t i, double* acc) {
  const Gaussian& g = p.gauss;
  for (const PreparedClick& c : p.clicks) {
    if (!c.rows.contains(i)) continue;
    const double dy = static_cast<double>(i) - c.y, dy2 = dy * dy;
    if (!(dy2 < g.radius2)) continue;
    const double a = c.sign * g.scale * std::exp(-dy2 * g.inv_two_sigma2);
    const double b = -c.sign * g.scale * g.floor;
    const Range cols = chord(c, dy2, g.radius2);
    const double* __restrict ex = p.col_exp.data() + c.table + (cols.lo - c.cols.lo);
    double* __restrict row = acc + cols.lo;
    for (int64_t k = 0; k < cols.size(); ++k) row[k] += a * ex[k] + b;
  }
}

// Squared distances of row i's pixels in seg.cols to the segment, min-ed into dist2 (indexed
// by column). Same formula as the numpy reference: project, clamp t to [0, 1], measure.
void min_segment_dist2_row(const PreparedSegment& s, int64_t i, double* dist2) {
  const double py = static_cast<double>(i) - s.ay;
  for (int64_t j = s.cols.lo; j < s.cols.hi; ++j) {
    const double px = static_cast<double>(j) - s.ax;
    const double t = std::clamp((px * s.dx + py * s.dy) * s.inv_len2, 0.0, 1.0);
    const double ex = px - t * s.dx, ey = py - t * s.dy;
    dist2[j] = std::min(dist2[j], ex * ex + ey * ey);
  }
}

// Adds every stroke covering row i into acc; dist2 is a width-sized scratch row.
void add_strokes_row(const Prepared& p, int64_t i, double* acc, double* dist2) {
  const Gaussian& g = p.gauss;
  for (const PreparedStroke& st : p.strokes) {
    if (!st.rows.contains(i)) continue;
    std::fill(dist2 + st.cols.lo, dist2 + st.cols.hi, std::numeric_limits<double>::infinity());
    for (size_t k = st.first_segment; k < st.first_segment + st.num_segments; ++k) {
      if (p.segments[k].rows.contains(i)) min_segment_dist2_row(p.segments[k], i, dist2);
    }
    for (int64_t j = st.cols.lo; j < st.cols.hi; ++j) {
      if (dist2[j] < g.radius2) acc[j] += st.sign * g.from_dist2(dist2[j]);
    }
  }
}

// Rows are dealt to threads in interleaved blocks: clicks cluster on the object, so
// contiguous halves of the image would leave one thread with most of the work.
constexpr int64_t kRowBlock = 8;
// Below this many pixel evaluations per thread (~0.1 ms), starting a thread costs more than
// it saves.
constexpr double kMinWorkPerThread = 1.5e5;
// Zero-filling an uncovered pixel costs a small fraction of evaluating a covered one.
constexpr double kFillWork = 0.125;

// Sorts the click and stroke windows by first column, for covered_runs().
void prepare_covers(Prepared& p) {
  for (const PreparedClick& c : p.clicks) p.covers.push_back({c.rows, c.cols});
  for (const PreparedStroke& st : p.strokes) p.covers.push_back({st.rows, st.cols});
  std::sort(p.covers.begin(), p.covers.end(),
            [](const Cover& a, const Cover& b) { return a.cols.lo < b.cols.lo; });
}

// The maximal runs of columns of row i that some window covers, left to right, into runs.
// Only these are accumulated and clipped: clicks spread over the image leave most of a
// row uncovered even where their windows' overall span reaches across it.
void covered_runs(const Prepared& p, int64_t i, std::vector<Range>& runs) {
  runs.clear();
  for (const Cover& c : p.covers) {
    if (!c.rows.contains(i)) continue;
    if (!runs.empty() && c.cols.lo <= runs.back().hi) {
      runs.back().hi = std::max(runs.back().hi, c.cols.hi);
    } else {
      runs.push_back(c.cols);
    }
  }
}

// row = clip(acc, -1, 1) over the run, and acc back to 0 there. With SSE2 two pixels at a
// time: GCC keeps the scalar clamp as two data-dependent branches, which mispredict on a
// mix of positive and negative clicks.
void clip_run(double* __restrict acc, float* __restrict row, Range run) {
  int64_t j = run.lo;
#ifdef __SSE2__
  const __m128d lo = _mm_set1_pd(-1.0), hi = _mm_set1_pd(1.0), zero = _mm_setzero_pd();
  for (; j + 2 <= run.hi; j += 2) {
    const __m128d v = _mm_min_pd(_mm_max_pd(_mm_loadu_pd(acc + j), lo), hi);
    _mm_storel_pi(reinterpret_cast<__m64*>(row + j), _mm_cvtpd_ps(v));
    _mm_storeu_pd(acc + j, zero);
  }
#endif
  for (; j < run.hi; ++j) {
    row[j] = static_cast<float>(std::min(1.0, std::max(-1.0, acc[j])));
    acc[j] = 0.0;
  }
}

// Renders the rows of one lane. acc stays 0 outside the row being rendered, so only the
// covered runs need resetting.
void render_rows(const Prepared& p, float* out, int64_t height, int64_t width, int64_t lane,
                 int64_t lanes) {
  std::vector<double> acc(width, 0.0), dist2(p.strokes.empty() ? 0 : width);
  std::vector<Range> runs;
  runs.reserve(p.covers.size());
  for (int64_t block = lane; block * kRowBlock < height; block += lanes) {
    for (int64_t i = block * kRowBlock; i < std::min(height, (block + 1) * kRowBlock); ++i) {
      float* row = out + i * width;
      covered_runs(p, i, runs);
      int64_t written = 0;
      for (const Range& run : runs) {
        std::fill(row + written, row + run.lo, 0.0f);
        written = run.hi;
      }
      std::fill(row + written, row + width, 0.0f);
      if (runs.empty()) continue;
      add_clicks_row(p, i, acc.data());
      add_strokes_row(p, i, acc.data(), dist2.data());
      for (const Range& run : runs) clip_run(acc.data(), row, run);
    }
  }
}

}  // namespace

void validate_click_inputs(int64_t height, int64_t width, const ClickInputs& in, double sigma) {
  if (height < 1 || width < 1) {
    throw std::invalid_argument("render_clicks: height and width must be >= 1, got " +
                                std::to_string(height) + "x" + std::to_string(width));
  }
  if (!std::isfinite(sigma) || sigma <= 0.0) {
    throw std::invalid_argument("render_clicks: sigma must be a positive finite number");
  }
  if (in.num_clicks < 0 || in.num_strokes < 0 || (in.num_clicks > 0 && !in.clicks) ||
      (in.num_strokes > 0 && (!in.stroke_points || !in.stroke_offsets || !in.stroke_labels))) {
    throw std::invalid_argument("render_clicks: null pointer or negative count in the inputs");
  }
  for (int64_t k = 0; k < in.num_clicks; ++k) {
    if (!is_finite_xy(in.clicks + 3 * k)) {
      throw std::invalid_argument("render_clicks: click " + std::to_string(k) + " is not finite");
    }
  }
  if (in.num_strokes > 0 && in.stroke_offsets[0] != 0) {
    throw std::invalid_argument("render_clicks: stroke_offsets[0] must be 0");
  }
  for (int64_t s = 0; s < in.num_strokes; ++s) {
    if (in.stroke_offsets[s + 1] <= in.stroke_offsets[s]) {
      throw std::invalid_argument("render_clicks: stroke " + std::to_string(s) + " has no point");
    }
  }
  const int64_t num_points = in.num_strokes > 0 ? in.stroke_offsets[in.num_strokes] : 0;
  for (int64_t k = 0; k < num_points; ++k) {
    if (!is_finite_xy(in.stroke_points + 2 * k)) {
      throw std::invalid_argument("render_clicks: stroke point " + std::to_string(k) +
                                  " is not finite");
    }
  }
}

void render_clicks_cpu(float* out, int64_t height, int64_t width, const ClickInputs& in,
                       double sigma, int num_threads) {
  validate_click_inputs(height, width, in, sigma);
  Prepared p{Gaussian(sigma), {}, {}, {}, {}, {}, 0.0};
  prepare_clicks(in, height, width, p);
  prepare_strokes(in, height, width, p);
  prepare_covers(p);
  const double work = p.work + kFillWork * static_cast<double>(height) * width;
  const int threads = num_threads > 0 ? num_threads : default_num_threads();
  const int64_t blocks = (height + kRowBlock - 1) / kRowBlock;
  const int64_t lanes = std::clamp<int64_t>(static_cast<int64_t>(work / kMinWorkPerThread), 1,
                                            std::min<int64_t>(threads, blocks));
  parallel_for(lanes, 1, static_cast<int>(lanes), [&](int64_t begin, int64_t end) {
    for (int64_t lane = begin; lane < end; ++lane) render_rows(p, out, height, width, lane, lanes);
  });
}

}  // namespace ivos
