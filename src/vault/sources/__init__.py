"""Where data comes from: the `Source` protocol (`base`), the registry, and one package per
source type (`sqlite`, `postgresql`, `mongodb`, `settings`)."""
