fn main() {
    std::process::exit(xlat64::cli::main());
}
