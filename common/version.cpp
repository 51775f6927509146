#include "common/version.h"

namespace einsim {

const char* version() { return EINSIM_VERSION; }

}  // namespace einsim
