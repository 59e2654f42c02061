# bash completion for gpux (installed as share/bash-completion/completions/gpux): verbs, each
# verb's options, image names from `gpux list`, server names from `gpux ps`.
_gpux_images() {
  gpux list 2>/dev/null | awk 'NR > 1 { print $1 ":" $2 }'
}
_gpux_servers() {
  gpux ps 2>/dev/null | awk 'NR > 1 { print $1 }'
}
_gpux() {
  local cur prev verb i
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  local verbs="build run tune serve ps logs stop list images inspect tag rm init push pull login logout version devices verify bench help"
  verb=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in -*) ;; *) verb=${COMP_WORDS[i]}; break ;; esac
  done
  if [ -z "$verb" ]; then
    COMPREPLY=($(compgen -W "$verbs --help --version" -- "$cur"))
    return
  fi
  case $prev in
    --backend) COMPREPLY=($(compgen -W "cpu webgpu gpu auto" -- "$cur")); return ;;
    --precision) COMPREPLY=($(compgen -W "fp32 fp16" -- "$cur")); return ;;
    --template) COMPREPLY=($(compgen -W "blank image-classification text-classification ocr audio" -- "$cur")); return ;;
    -i|--input) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "${cur#@}")); return ;;
    -t|--tag|--port|--host|--name|--max-batch-size|--max-queue-delay-ms|--max-queue|--timeout|--max-body|--threads|\
    --runs|--warmup|--min-time|--jobs|--rtol|--atol|--atol-scale|--l2|--chunk-size|--limit-rate|-u|--username|-n|--tail) return ;;
    --format) COMPREPLY=($(compgen -W "json table" -- "$cur")); return ;;
  esac
  local opts
  case $verb in
    build) opts="-t --tag --backend --tune --no-tune --tune-time --no-smoke --allow-outside --json -q --quiet --help" ;;
    tune) opts="--tune-time --json -q --quiet --help" ;;
    run) opts="-i --input --json --full -o --output --json-input --batch --backend --repeat --interactive --allow-handler --max-new-tokens --temperature --top-k --top-p --seed --repetition-penalty --precision --help" ;;
    serve) opts="--port --host -d --detach --name --backend --max-batch-size --max-queue-delay-ms --max-queue --timeout --max-body --threads --help --cors --allow-handler" ;;
    ps) opts="-a --all -q --quiet --format --json --help" ;;
    list|images) opts="-q --quiet --format --json --help" ;;
    devices|version) opts="--json --help" ;;
    inspect) opts="--json --help" ;;
    logs) opts="-f --follow -n --tail --help" ;;
    stop) opts="--timeout --help" ;;
    init) opts="--template --help" ;;
    push) opts="--insecure --chunk-size --limit-rate -u --username --password-stdin --json -q --quiet --help" ;;
    pull) opts="--insecure --limit-rate -u --username --password-stdin --json -q --quiet --help" ;;
    login) opts="-u --username --password-stdin --insecure --help" ;;
    verify) opts="--backend --precision --rtol --atol --atol-scale --l2 --top1 --jobs --timeout --json --no-fallback --help" ;;
    bench) opts="--backend --precision --threads --runs --warmup --min-time --profile --json --help" ;;
    rm) opts="-f --force --help" ;;
    tag|logout) opts="--help" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case $verb in
    run|serve) COMPREPLY=($(compgen -W "$(_gpux_images)" -- "$cur") $(compgen -d -- "$cur")) ;;
    inspect|tag|rm|push) COMPREPLY=($(compgen -W "$(_gpux_images)" -- "$cur")) ;;
    logs|stop) COMPREPLY=($(compgen -W "$(_gpux_servers)" -- "$cur")) ;;
    build|verify|bench|init) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
    help) COMPREPLY=($(compgen -W "$verbs" -- "$cur")) ;;
  esac
}
complete -F _gpux gpux
