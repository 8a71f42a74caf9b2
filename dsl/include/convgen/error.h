// Errors raised while a model is described: they name the layer, its input shape and the rule
// that broke, so a wrong network stops the build with a message a user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace convgen {

class ModelError : public std::runtime_error {
  public:
    explicit ModelError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace convgen
