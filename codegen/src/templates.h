// The text of the generated library's source files (codegen/library/*.in), embedded at build time.
#pragma once

namespace convgen::codegen::templates {

extern const char* const model_h;
extern const char* const model_hpp;
extern const char* const model_library_cpp;
extern const char* const safetensors;

}  // namespace convgen::codegen::templates
