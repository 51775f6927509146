// libsystemc's own main() calls sc_main, so the shared library refers to it and every program
// that links SystemC must define it, whether or not it simulates. einsim's programs have their
// own main(); this one is never called. Compiled into each program that links einsim_engine
// (an INTERFACE source), so no link depends on which objects a static library pulls in.
// Visible by default even where a target hides its symbols (the Python extension, built with
// -fvisibility=hidden): libsystemc resolves it when the extension loads.
extern "C" __attribute__((visibility("default"))) int sc_main(int /*argc*/, char* /*argv*/[]) { return 1; }  // C linkage, as SystemC declares it
