#include "random.h"

namespace convgen::codegen::random {

using Halide::Expr;

Expr u32(uint32_t value) {
    return Halide::Internal::make_const(Halide::UInt(32), value);
}

Expr mix(Expr v) {
    v = v ^ (v >> 16);
    v = v * u32(0x7feb352du);
    v = v ^ (v >> 15);
    v = v * u32(0x846ca68bu);
    return v ^ (v >> 16);
}

uint32_t name_hash(const std::string& name) {
    uint32_t h = 2166136261u;
    for (unsigned char ch : name) h = (h ^ ch) * 16777619u;
    return h;
}

Expr key(const Expr& seed, uint32_t purpose) {
    return mix(seed ^ u32(purpose));
}

Expr uniform(const Expr& key, const Expr& counter) {
    return Halide::cast<float>(mix(Halide::cast<uint32_t>(counter) ^ key) >> 8) * (1.0f / 16777216.0f);
}

Expr normal(const Expr& key, const Expr& counter) {
    const Expr c = Halide::cast<uint32_t>(counter) * u32(2);
    // (0, 1], so the logarithm is finite.
    const Expr u1 = (Halide::cast<float>(mix(c ^ key) >> 8) + 1.0f) * (1.0f / 16777216.0f);
    const Expr u2 = uniform(key, c + u32(1));
    return Halide::sqrt(-2.0f * Halide::log(u1)) * Halide::cos(6.28318530717958647692f * u2);
}

}  // namespace convgen::codegen::random
