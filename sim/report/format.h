#pragma once
// The output formats every report renders to (`--format table|json|csv`).

namespace einsim {

enum class Format { Table, Json, Csv };

}  // namespace einsim
