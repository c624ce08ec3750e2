// The subcommands of the kiln tool. Each add_*_command registers its
// subcommand with the app; when the subcommand is parsed its callback runs
// it and stores its exit status (0 success, 1 failure) in *exit_code.
// Commands report every error on stderr, naming the file or input at fault,
// and never throw.
#pragma once

namespace CLI {
class App;
}

namespace kiln::cli {

void add_output_flags(CLI::App& app);  // --quiet, --log-format (output.h)
void add_run_command(CLI::App& app, int* exit_code);
void add_inspect_command(CLI::App& app, int* exit_code);
void add_ops_command(CLI::App& app, int* exit_code);
void add_build_command(CLI::App& app, int* exit_code);
void add_bench_command(CLI::App& app, int* exit_code);
void add_serve_command(CLI::App& app, int* exit_code);
void add_train_command(CLI::App& app, int* exit_code);
void add_perf_command(CLI::App& app, int* exit_code);
void add_quantize_command(CLI::App& app, int* exit_code);
void add_accuracy_command(CLI::App& app, int* exit_code);

}  // namespace kiln::cli
