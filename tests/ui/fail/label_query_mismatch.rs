use promtrack::{Counter, Family};

promtrack::family! {
    static REQUESTS: Family<[String; 2], Counter> =
        ("requests_total", "Requests.", label_names = ["method", "path"]);
}

fn handle(path: &str, status: u16) {
    // One value for two labels.
    REQUESTS.with(&[path]).inc();
    // Integers for a family of strings.
    REQUESTS.with(&[status, status]).inc();
}

fn main() {
    handle("/", 200);
}
