// Writes a model's standalone library: Halide objects for every target (with runtime dispatch
// between them), the runtime, the host-side source, the C and C++ headers and the manifest.
#pragma once

#include <convgen/model.h>
#include <convgen/schedules/database.h>

#include <Halide.h>

#include <string>
#include <vector>

namespace convgen::codegen {

struct TargetChoice {
    Halide::Target target;
    std::string suffix;  // object file suffix: "<model>_predict-<suffix>.o"
};

struct EmitOptions {
    std::string output_dir;
    // CPU targets, most capable first; the first the machine supports runs. Or one GPU target.
    std::vector<TargetChoice> targets;
    const schedules::ScheduleDatabase* database = nullptr;
    // The prefix of the library's files and C symbols; empty: the model's name. A model's CUDA
    // library ("lenet5_cuda") can then be linked into one program with its CPU one ("lenet5").
    std::string library_name;
};

// The default: AVX-512, AVX2+FMA and plain x86-64 (SSE4.1 is not assumed).
std::vector<TargetChoice> default_x86_targets();

// Throws ModelError (the model cannot be lowered) or std::runtime_error (files cannot be written).
void emit_library(const Model& model, const EmitOptions& options);

// Names of the files emit_library writes, for build systems.
std::vector<std::string> emitted_objects(const std::string& model);

}  // namespace convgen::codegen
