// Located errors of the less travelled paths: each message and location is checked.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "helpers.h"
#include "workloads/executor.h"
#include "workloads/model_config.h"
#include "workloads/transformer.h"

using namespace einsim;
using einsim::test::cascade_from;
using einsim::test::error_of;
using einsim::test::model_toml;
namespace fs = std::filesystem;

namespace {
// A cascade document: einsums (TOML array body), ranks, extra tables.
std::string doc(const std::string& einsums, const std::string& ranks, const std::string& extra = "",
                const std::string& inputs = "\"A\"") {
  return "version = 1\n[cascade]\nname = \"t\"\ninputs = [" + inputs + "]\neinsums = [\n" + einsums + "]\n" + extra +
         "[cascade.ranks]\n" + ranks;
}
const std::string kTiny = "model_type = \"llama\"\nhidden_size = 8\nnum_hidden_layers = 2\nnum_attention_heads = 4\n"
                          "intermediate_size = 12\nvocab_size = 11\n";
}  // namespace

namespace {
const std::string kTinyJson =
    "{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10, \"intermediate_size\": 16}";
}  // namespace

TEST_CASE("extent and partition errors", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = \"8 / (2 - 2)\"\n")); }) ==
        "c.toml:9:8: error: extent of rank 'M' divides by zero");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = 4\nN = 4\n", "[cascade.partitions]\nM = [\"N\"]\n")); }) ==
        "c.toml:9:5: error: partition of 'M' needs at least two ranks");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = 4\nN = 2\n", "[cascade.partitions]\nM = [\"M\", \"N\"]\n")); }) ==
        "c.toml:9:5: error: rank 'M' cannot partition 'M' (it already partitions a rank or is the rank itself)");
  CHECK_THAT(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = 1\nA1 = 1\nB = 1\nC = 1\n",
                                            "[cascade.partitions]\nM = [\"A1\", \"B\"]\nA1 = [\"M\", \"C\"]\n")); }),
             Catch::Contains("form a cycle"));
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = \"4 + \"\n")); }) ==
        "c.toml:9:10: error: expected an integer, a parameter or a rank, found 'end of expression'");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = \"4 4\"\n")); }) ==
        "c.toml:9:8: error: unexpected '4' in extent expression");
}

TEST_CASE("index errors", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from(doc("\"R[m+1] = A[m]\",\n\"R[m+2] = A[m]\",\n\"Z[m,n] = R[m+1] * R[n+2]\",\n", "M = 3\nN = 3\n")); }) ==
        "c.toml:7:2: error: tensor 'R' is written twice (also at c.toml:6:2)");
  CHECK(error_of([] { cascade_from(doc("\"Z[m+1,n+1] = A[m]\",\n", "M = 3\nN = 3\n")); }) ==
        "c.toml:6:9: error: only one iterative index ('m1+1') per Einsum");
  CHECK(error_of([] { cascade_from(doc("\"Z[2*m] = A[m]\",\n", "M = 3\n")); }) ==
        "c.toml:6:5: error: a left-hand-side index must be a variable ('m'), an update ('m1+1'), an initial index ('m1=0') or a "
        "constant");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m + I[m]]\",\n", "M = 3\n", "", "\"A\", \"I\"")); }) ==
        "c.toml:6:13: error: a gather index (T[...] inside brackets) must be the whole index expression");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m, Q]\",\n", "M = 3\n")); }) ==
        "c.toml:6:14: error: 'Q' is not a rank, so it cannot stand for an extent here");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m] * 1.2.3\",\n", "M = 3\n")); }) == "c.toml:6:16: error: '1.2.3' is not a number");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[,]\",\n", "M = 3\n")); }) ==
        "c.toml:6:11: error: expected an index (variable, extent or integer), found ','");
  CHECK(error_of([] { cascade_from(doc("\"Z[m] = A[m]\",\n", "M = 3\n", "", "\"A\", \"A\"")); }) ==
        "c.toml:4:10: error: input 'A' is listed twice");
  CHECK(error_of([] { cascade_from(doc("\"Z[m+1] = A[m]\",\n", "M = 3\n", "[cascade.tensors]\nZ = { ranks = [\"M\"] }\n")); }) ==
        "c.toml:9:5: error: 'Z' is written up to index 3 in dimension 1, beyond its declared rank M (3)");
}

TEST_CASE("a recurrence that no loop can run is an error", "[cascade][errors]") {
  // R recurs over m, but S (in the same cycle) does not keep m on its left-hand side.
  CHECK_THAT(error_of([] {
               cascade_from(doc("\"R[m=0] = 0\",\n\"S = R[m]\",\n\"R[m+1] = S + A[m]\",\n", "M = 3\n"));
             }),
             Catch::Contains("cannot schedule the recurrence through") && Catch::Contains("no iterative rank is kept"));
}

TEST_CASE("cascade file structure errors", "[cascade][errors]") {
  CHECK(error_of([] { cascade_from("version = 1\n[cascade]\nname = \"t\"\neinsums = [\"Z = A\"]\n[cascade.ranks]\n"); }) ==
        "c.toml:5:1: error: [cascade.ranks] declares no rank");
  CHECK(error_of([] { cascade_from("version = 1\n[cascade]\nname = \"t\"\neinsums = \"Z = A\"\n[cascade.ranks]\nM = 1\n"); }) ==
        "c.toml:4:11: error: 'cascade.einsums' must be an array of strings");
  CHECK(error_of([] { cascade_from("version = 1\n[cascade]\nname = \"t\"\neinsums = [3]\n[cascade.ranks]\nM = 1\n"); }) ==
        "c.toml:4:12: error: 'cascade.einsums' must contain only strings");
  CHECK(error_of([] { cascade_from("version = 1\n[cascade]\nname = \"t\"\n[cascade.ranks]\nM = 1\n"); }) ==
        "c.toml:2:1: error: missing required key 'cascade.einsums' (an array of Einsum strings)");
}

TEST_CASE("model config errors", "[model][errors]") {
  CHECK(error_of([] { model_toml("model_type = \"llama\"\nhidden_size = 10\nnum_hidden_layers = 2\nnum_attention_heads = 4\n"
                                 "intermediate_size = 12\nvocab_size = 11\n"); }) ==
        "m.toml:2:1: error: hidden_size 10 is not divisible by num_attention_heads 4; give head_dim");
  CHECK(error_of([] { model_toml(kTiny + "num_key_value_heads = 3\n"); }) ==
        "m.toml:2:1: error: num_attention_heads 4 is not a multiple of num_key_value_heads 3");
  CHECK(error_of([] { model_toml(kTiny + "num_local_experts = 2\nnum_experts_per_tok = 3\n"); }) ==
        "m.toml:2:1: error: num_experts_per_tok 3 exceeds num_local_experts 2");
  CHECK(error_of([] { model_toml("model_type = \"gpt2\"\nhidden_size = 8\nnum_hidden_layers = 2\nnum_attention_heads = 4\n"
                                 "intermediate_size = 12\nvocab_size = 11\n"); }) ==
        "m.toml:2:1: error: learned position embeddings need max_position_embeddings");
  CHECK(error_of([] { model_toml(kTiny + "num_hidden_layers = 0\n"); }) != "");
  CHECK_THAT(error_of([] { model_toml("model_type = \"llama\"\nhidden_size = 0\n"); }),
             Catch::Contains("m.toml:4:15: error: 'model.hidden_size' = 0 is out of range"));
  CHECK_THAT(error_of([] { model_toml("model_type = \"gpt5\"\n"); }), Catch::Contains("'model.model_type' = \"gpt5\" is not one of"));
  CHECK(error_of([] { parse_hf_config_json("{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1,"
                                           " \"num_attention_heads\": 2, \"vocab_size\": 10, \"tie_word_embeddings\": 1, \"intermediate_size\": 16}", "c.json"); }) ==
        "c.json:1:111: error: 'tie_word_embeddings' must be true or false");
  CHECK(error_of([] { parse_hf_config_json("{\"model_type\": 7}", "c.json"); }) == "c.json:1:2: error: 'model_type' must be a string");
  CHECK(error_of([] { parse_hf_config_json("{\"model_type\": \"llama\", \"hidden_size\": -8}", "c.json"); }) ==
        "c.json:1:25: error: 'hidden_size' = -8 is out of range: it must be in [1, 16777216]");
  CHECK(error_of([] { load_model("/nonexistent/config.json"); }) == "/nonexistent/config.json: error: cannot open file");
  // --set on a config.json: known keys replace the file's, unknown ones are errors.
  const std::string llama_json = std::string(EINSIM_TEST_DATA) + "/llama-2-7b-config.json";
  CHECK(error_of([&] { load_model(llama_json, {"a=1"}); }) == "--set: error: 'a=1': unknown key 'a' for a config.json");
  CHECK(error_of([&] { load_model(llama_json, {"model.hiden_size=1"}); }) ==
        "--set: error: 'model.hiden_size=1': unknown key 'hiden_size' for a config.json (did you mean 'hidden_size'?)");
  CHECK(error_of([&] { load_model(llama_json, {"model.hidden_size=big"}); }) == "--set: error: 'hidden_size' must be an integer");
  CHECK(error_of([&] { load_model(llama_json, {"model.rope.theta=1"}); }) ==
        "--set: error: 'model.rope.theta=1': a config.json override is model.KEY=VALUE with a top-level KEY");
  CHECK(load_model(llama_json, {"model.num_hidden_layers=2"}).num_hidden_layers == 2);
  CHECK(load_model(llama_json, {"num_hidden_layers=3"}).num_hidden_layers == 3);
  // Keys that change the architecture and are not modelled are refused at the key, never
  // dropped; null (or a window switched off by use_sliding_window) changes nothing.
  const std::string open = kTinyJson.substr(0, kTinyJson.size() - 1);
  // A window on every layer is read (Mistral-7B-v0.1); null or switched off is none; a window
  // on some layers only (Qwen2's max_window_layers) is a pattern, refused; a window must be >= 1.
  CHECK(parse_hf_config_json(open + ", \"sliding_window\": 4096}", "c.json").sliding_window == 4096);
  CHECK(parse_hf_config_json(open + ", \"sliding_window\": null}", "c.json").sliding_window == 0);
  CHECK(parse_hf_config_json(open + ", \"sliding_window\": 4096, \"use_sliding_window\": false}", "c.json").sliding_window == 0);
  CHECK_THAT(error_of([&] { parse_hf_config_json(open + ",\n \"sliding_window\": 0}", "c.json"); }),
             Catch::Contains("c.json:2:2: error: 'sliding_window' = 0 is out of range"));
  CHECK_THAT(error_of([] { model_toml(kTiny + "sliding_window = 0\n"); }), Catch::Contains("'model.sliding_window' = 0 is out of range"));
  for (const char* key : {"layers_block_type", "hybrid_override_pattern", "state_size"}) {
    CAPTURE(key);
    CHECK_THAT(error_of([&] { parse_hf_config_json(open + fmt::format(", \"{}\": 8}}", key), "c.json"); }),
               Catch::Contains(fmt::format("'{}' = 8", key)) && Catch::Contains("not modelled yet"));
  }
  CHECK(load_model(llama_json, {"kv_lora_rank=null"}).hidden_size == 4096);
  // Python's bare Infinity and NaN read as such (a key einsim needs as a number says so at the
  // key; one it ignores is ignored), and a later syntax error keeps its place in the text.
  CHECK(parse_hf_config_json(open + ", \"rope_scaling\": {\"factor\": Infinity, \"low\": -Infinity, \"x\": NaN, \"s\": \"NaN\\\" Infinity\"}}", "c.json")
            .hidden_size == 8);
  CHECK_THAT(error_of([&] { parse_hf_config_json(open + ",\n \"sliding_window\": Infinity}", "c.json"); }),
             Catch::Contains("c.json:2:2: error: 'sliding_window' must be an integer"));
  CHECK_THAT(error_of([&] { parse_hf_config_json("{\"a\": NaN, \"b\": Infinity,\n  x}", "c.json"); }), Catch::Contains("c.json:2:3: error:"));
  // Named by _name_or_path, else by the file (not its folder).
  CHECK(parse_hf_config_json(kTinyJson, "dir/x.json").name == "x");
  CHECK(parse_hf_config_json(kTinyJson.substr(0, kTinyJson.size() - 1) + ", \"_name_or_path\": \"org/Tiny-1B\"}", "dir/x.json").name == "Tiny-1B");
  // Names are bounded (a 20 MB name cost seconds and GB in every report row).
  CHECK_THAT(error_of([] { model_toml(kTiny + "name = \"" + std::string(300, 'n') + "\"\n"); }),
             Catch::Contains("'model.name' must be a name of 1 to 256 characters without control characters (found 300 characters)"));
  CHECK_THAT(error_of([] { parse_hf_config_json(kTinyJson.substr(0, kTinyJson.size() - 1) + ", \"_name_or_path\": \"" + std::string(300, 'n') + "\"}", "c.json"); }),
             Catch::Contains("c.json:1:") && Catch::Contains("'_name_or_path' must end in a name of at most 256 characters"));
  // No silent defaults: an unknown torch_dtype and a missing FFN width (outside GPT-2 and Falcon).
  CHECK_THAT(error_of([] { parse_hf_config_json(kTinyJson.substr(0, kTinyJson.size() - 1) + ", \"torch_dtype\": \"float64\"}", "c.json"); }),
             Catch::Contains("c.json:1:") && Catch::Contains("'float64' is not a type einsim computes in"));
  CHECK(error_of([] {
          parse_hf_config_json("{\"model_type\": \"llama\", \"hidden_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10}",
                               "c.json");
        }) == "c.json:1:1: error: missing required key 'intermediate_size'");
  CHECK(parse_hf_config_json("{\"model_type\": \"gpt2\", \"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2, \"vocab_size\": 10, \"n_positions\": 16}", "g.json")
            .intermediate_size == 32);
  // A bare name that is neither a file nor a preset names the closest presets of its kind.
  CHECK_THAT(error_of([] { load_model("llama-3-8"); }), Catch::Contains("llama-3-8: error: no such file, and no shipped model of that name (closest: llama-3-8b"));
  const ModelConfig m = model_toml(kTiny);
  Phase ph;
  ph.batch = 0;
  CHECK_THAT(error_of([&] { transformer_cascade(m, ph); }), Catch::Contains("batch and prompt must be >= 1"));
}

TEST_CASE("config document errors", "[config][errors]") {
  CHECK(error_of([] { ConfigDoc::parse("version = 1\ninherits = \"x\"\n", "p.toml"); }) ==
        "p.toml:2:12: error: 'inherits' needs a file on disk");
  CHECK(error_of([] { ConfigDoc::parse("version = 1\nn = 2.5\n", "p.toml")->root().get_number("n", 0, 1); }) ==
        "p.toml:2:5: error: 'n' = 2.5 is out of range: it must be in [0, 1]");
  CHECK(error_of([] { ConfigDoc::parse("version = 1\nn = 5\n", "p.toml")->root().get_int("n", 0, 3); }) ==
        "p.toml:2:5: error: 'n' = 5 is out of range: it must be in [0, 3]");
  CHECK(error_of([] { ConfigDoc::parse("version = 1\n", "p.toml")->root().get_quantity("bw", Dim::Bandwidth); }) ==
        "p.toml:1:1: error: missing required key 'bw' (a bandwidth (e.g. \"3.35 TB/s\", \"400 Gb/s\", \"400 GiB/s\"))");
  CHECK(error_of([] { ConfigDoc::parse("version = 1\n", "p.toml")->root().get_choice("c", {"a", "b"}); }) ==
        "p.toml:1:1: error: missing required key 'c' (one of: a, b)");
  CHECK(error_of([] { ConfigDoc::parse("version = 1\n", "p.toml")->root().get_string_array("s"); }) ==
        "p.toml:1:1: error: missing required key 's' (an array of strings)");
  CHECK(error_of([] { ConfigDoc::parse("version = 1\ns = 3\n", "p.toml")->root().get_string_array("s"); }) ==
        "p.toml:2:5: error: 's' must be an array of strings, found an integer");

  const fs::path dir = fs::temp_directory_path() / ("einsim-deep-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (int i = 0; i < 20; ++i)
    std::ofstream(dir / ("p" + std::to_string(i) + ".toml")) << "version = 1\ninherits = \"p" << i + 1 << "\"\n";
  std::ofstream(dir / "p20.toml") << "version = 1\n";
  CHECK_THAT(error_of([&] { ConfigDoc::load((dir / "p0.toml").string()); }), Catch::Contains("'inherits' chain is too deep"));
  std::ofstream(dir / "num.toml") << "version = 1\ninherits = 5\n";
  CHECK(error_of([&] { ConfigDoc::load((dir / "num.toml").string()); }) ==
        (dir / "num.toml").string() + ":2:12: error: 'inherits' must be a string naming a preset or a file");
  fs::remove_all(dir);
}

TEST_CASE("fuzzer findings stay fixed", "[errors]") {
  // A constant left-hand-side index made a written tensor of 5e13 values.
  const Cascade c = cascade_from(doc("\"Z[m, 5555555555555] = A[m]\",\n", "M = 2\n"));
  CHECK_THAT(error_of([&] { execute(c, random_inputs(c, 1)); }), Catch::Contains("tensors exceed"));
  // A JSON number too large for a double.
  CHECK(error_of([] { parse_hf_config_json("{\"hidden_size\": 17e666333}", "c.json"); }) ==
        "c.json: error: number overflow parsing '17e666333'");
}

TEST_CASE("the reference executor refuses large inputs", "[executor][errors]") {
  const Cascade c = cascade_from(doc("\"Z[m] = A[m,n]\",\n", "M = 65536\nN = 2048\n"));
  CHECK_THAT(error_of([&] { random_inputs(c, 1); }), Catch::Contains("inputs exceed 67108864 values"));
}
