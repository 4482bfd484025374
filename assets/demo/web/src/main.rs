//! The demo service: prints a greeting for an environment, or its version.

const VERSION: &str = "1.0.0";

fn greeting(env: &str) -> String {
    match env {
        "" => "hello from web".to_string(),
        env => format!("hello from web in {env}"),
    }
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    match arg.as_str() {
        "--version" => println!("web {VERSION}"),
        "--health" => println!("ok"),
        env => println!("{}", greeting(env)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_without_env() {
        assert_eq!(greeting(""), "hello from web");
    }

    #[test]
    fn greets_with_env() {
        assert_eq!(greeting("prod"), "hello from web in prod");
    }
}
