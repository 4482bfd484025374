fn main() {
    std::process::exit(pipedeck::cli::main());
}
