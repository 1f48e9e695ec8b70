// A Google Benchmark console reporter that, after the usual output, prints each measured
// benchmark next to its reference: the time ratio for pairs that do the same work, or the
// fraction of the reference's bandwidth for bytes-bound pairs, with the goal it is judged
// against. Each side is the median over repetitions (--benchmark_repetitions=N) of its real time
// per iteration; when both sides also report a "p50_ms" counter (the median of iterations timed
// one by one, as bench_models does), the time ratio compares those instead, which preemption on
// a shared machine barely moves.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace pynn_bench {

enum class Compare {
    Time,      // measured time / reference time (same work); goal is an upper bound
    Bandwidth, // measured bytes/s / reference bytes/s; goal is a lower bound
};

struct Pair {
    std::string measured; // benchmark names as registered
    std::string reference;
    Compare compare = Compare::Time;
    double goal = 0.0; // 0: no goal
};

class RatioReporter : public benchmark::ConsoleReporter {
public:
    RatioReporter()
        : benchmark::ConsoleReporter(isatty(STDOUT_FILENO) != 0 ? OO_ColorTabular : OO_Tabular) {}

    void add(Pair p) { m_pairs.push_back(std::move(p)); }
    // Adds `units` (e.g. "FLOP", "samples") to the rate printed for items_per_second.
    void set_items_unit(const std::string& name, const std::string& units) {
        m_items_unit[name] = units;
    }

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& r : runs) {
            if (r.error_occurred) {
                continue;
            }
            Result& res = m_results[r.run_name.function_name];
            if (r.run_type == Run::RT_Iteration) {
                res.iterations.push_back(summary(r));
            } else if (r.aggregate_name == "median") {
                res.median = summary(r);
                res.has_median = true;
            }
        }
        benchmark::ConsoleReporter::ReportRuns(runs);
    }

    void Finalize() override {
        benchmark::ConsoleReporter::Finalize();
        print_ratios();
    }

private:
    struct Summary {
        double seconds = 0;
        double p50_seconds = 0; // 0: not reported
        double bytes_per_second = 0;
        double items_per_second = 0;
    };
    struct Result {
        std::vector<Summary> iterations;
        Summary median;
        bool has_median = false;
    };

    static Summary summary(const Run& r) {
        Summary s;
        s.seconds = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
        auto counter = [&](const char* name) {
            auto it = r.counters.find(name);
            return it == r.counters.end() ? 0.0 : it->second.value;
        };
        s.bytes_per_second = counter("bytes_per_second");
        s.items_per_second = counter("items_per_second");
        s.p50_seconds = counter("p50_ms") * 1e-3;
        return s;
    }

    // The median repetition (its own counters), or the reported median aggregate when only
    // aggregates were reported (--benchmark_report_aggregates_only).
    bool lookup(const std::string& name, Summary& out) const {
        auto it = m_results.find(name);
        if (it == m_results.end()) {
            return false;
        }
        std::vector<Summary> runs = it->second.iterations;
        if (runs.empty()) {
            out = it->second.median;
            return it->second.has_median;
        }
        std::sort(runs.begin(), runs.end(),
                  [](const Summary& a, const Summary& b) { return a.seconds < b.seconds; });
        out = runs[(runs.size() - 1) / 2];
        return true;
    }

    static std::string time_text(double s) {
        char buf[32];
        if (s >= 1.0) {
            std::snprintf(buf, sizeof buf, "%.3f s", s);
        } else if (s >= 1e-3) {
            std::snprintf(buf, sizeof buf, "%.3f ms", s * 1e3);
        } else {
            std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
        }
        return buf;
    }

    std::string rate_text(const std::string& name, const Summary& s) const {
        char buf[48];
        if (s.bytes_per_second > 0) {
            std::snprintf(buf, sizeof buf, "%.1f GB/s", s.bytes_per_second / 1e9);
            return buf;
        }
        if (s.items_per_second > 0) {
            auto it = m_items_unit.find(name);
            const std::string unit = it == m_items_unit.end() ? "items" : it->second;
            if (unit == "FLOP") {
                std::snprintf(buf, sizeof buf, "%.1f GFLOP/s", s.items_per_second / 1e9);
            } else {
                std::snprintf(buf, sizeof buf, "%.0f %s/s", s.items_per_second, unit.c_str());
            }
            return buf;
        }
        return "";
    }

    void print_ratios() const {
        if (m_pairs.empty()) {
            return;
        }
        std::size_t wm = 8, wr = 9;
        for (const Pair& p : m_pairs) {
            wm = std::max(wm, p.measured.size());
            wr = std::max(wr, p.reference.size());
        }
        std::FILE* out = stdout;
        std::fflush(out);
        std::fprintf(out, "\nRatios (median over repetitions, real time; \"p50\": of per-iteration "
                          "p50s). x: measured/reference time, goal <=; bw: fraction of the "
                          "reference's bytes/s, goal >=\n");
        std::fprintf(out, "%-*s %12s %16s   %-*s %12s %16s %10s %10s\n", static_cast<int>(wm),
                     "measured", "time", "rate", static_cast<int>(wr), "reference", "time", "rate",
                     "ratio", "goal");
        for (const Pair& p : m_pairs) {
            Summary m, r;
            if (!lookup(p.measured, m) || !lookup(p.reference, r)) {
                continue; // filtered out by --benchmark_filter
            }
            double ratio = 0;
            const bool use_p50 = m.p50_seconds > 0 && r.p50_seconds > 0;
            if (use_p50) {
                m.seconds = m.p50_seconds;
                r.seconds = r.p50_seconds;
            }
            if (p.compare == Compare::Time) {
                ratio = r.seconds > 0 ? m.seconds / r.seconds : 0;
            } else {
                ratio = r.bytes_per_second > 0 ? m.bytes_per_second / r.bytes_per_second : 0;
            }
            char ratio_buf[24];
            std::snprintf(ratio_buf, sizeof ratio_buf, "%.3f%s", ratio,
                          p.compare == Compare::Bandwidth ? " bw"
                          : use_p50                       ? "x p50"
                                                          : "x");
            char goal_buf[24] = "-";
            if (p.goal > 0) {
                const bool met = p.compare == Compare::Time ? ratio <= p.goal : ratio >= p.goal;
                std::snprintf(goal_buf, sizeof goal_buf, "%s%.2f %s",
                              p.compare == Compare::Time ? "<=" : ">=", p.goal,
                              met ? "ok" : "MISS");
            }
            std::fprintf(out, "%-*s %12s %16s   %-*s %12s %16s %10s %10s\n", static_cast<int>(wm),
                         p.measured.c_str(), time_text(m.seconds).c_str(),
                         rate_text(p.measured, m).c_str(), static_cast<int>(wr),
                         p.reference.c_str(), time_text(r.seconds).c_str(),
                         rate_text(p.reference, r).c_str(), ratio_buf, goal_buf);
        }
        std::fflush(out);
    }

    std::vector<Pair> m_pairs;
    std::map<std::string, std::string> m_items_unit;
    std::map<std::string, Result> m_results;
};

// main() for a benchmark binary that registers its benchmarks (and pairs) in `register_all`.
template <class Register>
int run_with_ratios(int argc, char** argv, Register register_all) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    RatioReporter reporter;
    register_all(reporter);
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}

} // namespace pynn_bench
