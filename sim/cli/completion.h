#pragma once
// Shell completion and a manual page, both generated from the command line's own definition
// (its subcommands, options and help texts), so they cannot drift from it.
#include <CLI/CLI.hpp>

#include <string>

namespace einsim {

/// A bash completion script for `app` (`einsim completion bash`): commands, subcommands, each
/// command's flags, choices of flags that take a fixed set, and preset names after --arch,
/// --model and the other flags that name a preset.
std::string bash_completion(const CLI::App& app);

/// A manual page (man(7) macros) for `app` (`einsim man`): every command with its options.
std::string man_page(const CLI::App& app, const std::string& version);

}  // namespace einsim
