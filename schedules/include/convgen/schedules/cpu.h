// CPU schedules, one function per stage kind. Each applies a parameterised schedule: the
// parameters come from the schedule database when it has the layer's signature, otherwise from
// the default heuristics in this folder. Codegen calls them through schedules.h, which picks the
// target's set.
#pragma once

#include <convgen/schedules/schedules.h>

namespace convgen::schedules::cpu {

#include <convgen/schedules/stage_schedules.inc>

}  // namespace convgen::schedules::cpu
