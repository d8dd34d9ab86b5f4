# Shared by scripts/engine and scripts/buildkit (sourced, not run).

apt_private() {  # apt-get with a private sources list, lists and cache under $1
  local dir=$1; shift
  apt-get -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
    -o APT::Sandbox::User=root -q "$@"
}

in_registry() {  # in_registry HOST/REPOSITORY:TAG: the local (plain HTTP) registry has it
  skopeo inspect --raw --tls-verify=false "docker://$1" >/dev/null 2>&1
}
