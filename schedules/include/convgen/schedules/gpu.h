// CUDA schedules, one function per stage kind, with the same contract as the CPU ones (cpu.h).
// Codegen calls them through schedules.h when the target has a GPU feature.
#pragma once

#include <convgen/schedules/schedules.h>

namespace convgen::schedules::gpu {

#include <convgen/schedules/stage_schedules.inc>

}  // namespace convgen::schedules::gpu
