#pragma once

namespace einsim {

/// einsim's version ("0.1.0"), defined once: the project() line of the top-level CMakeLists.txt.
const char* version();

}  // namespace einsim
