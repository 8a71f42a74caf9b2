// Default schedule parameters, chosen from the stage's shape and the target's vector width.
#pragma once

#include <convgen/schedules/cpu.h>

#include <string>

namespace convgen::schedules::cpu {

// The key a stage's tuned parameters are stored under in the database.
std::string conv_signature(const char* stage, const ConvGeometry& g, bool fused_pool);
std::string dense_signature(const char* stage, int64_t in_features, int64_t out_features);

// The database's name for a target: its arch, OS and instruction-set features.
std::string target_key(const Halide::Target& target);

// Parameters for `signature`: the database's when it has them, else `defaults`, key by key.
ScheduleParameters choose(const Context& context, const std::string& signature, ScheduleParameters defaults);

// How many output pixels along x share each weight vector in a register tile: enough to hide the
// FMA latency, few enough that (channel vectors x pixels) accumulators fit in the 16 (AVX2) or
// 32 (AVX-512) vector registers. A divisor of the width is preferred, so no tail is computed.
int register_tile_width(int64_t width, int channel_vectors, int registers);

}  // namespace convgen::schedules::cpu
