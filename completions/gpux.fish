# fish completion for gpux (installed as share/fish/vendor_completions.d/gpux.fish): verbs, each
# verb's options, image names from `gpux list`, server names from `gpux ps`.
set -l verbs build run tune serve ps logs stop list images inspect tag rm init push pull login logout version devices verify bench help
function __gpux_images; gpux list 2>/dev/null | awk 'NR > 1 { print $1 ":" $2 }'; end
function __gpux_servers; gpux ps 2>/dev/null | awk 'NR > 1 { print $1 }'; end

complete -c gpux -f
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -l help -d 'show help'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -l version -d 'show the version'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a build -d 'build an image from a folder with a GPUXfile'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a run -d 'run an image on inputs'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a serve -d 'serve images over HTTP'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a ps -d 'list running servers'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a logs -d "show a server's log"
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a stop -d 'stop a server gracefully'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a 'list images' -d 'list the images in the local store'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a inspect -d 'show an image'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a tune -d 'tune an image\'s GEMMs for this GPU'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a tag -d 'give an image another name'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a rm -d 'remove images'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a init -d 'make a folder with a GPUXfile from a template'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a push -d 'push an image to an OCI registry'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a pull -d 'pull an image from an OCI registry'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a login -d 'store credentials for an OCI registry'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a logout -d 'forget the credentials stored for an OCI registry'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a help -d 'describe a command'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a version -d 'versions of gpux, its library, WebGPU; the devices'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a devices -d 'list the GPUs and the CPU'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a verify -d 'run ONNX test-case folders'
complete -c gpux -n "not __fish_seen_subcommand_from $verbs" -a bench -d 'time inference on ONNX test-case folders'

complete -c gpux -n "__fish_seen_subcommand_from $verbs" -l help -d 'show help'
complete -c gpux -n "__fish_seen_subcommand_from build run serve verify bench" -l backend -x -a 'cpu webgpu gpu auto' -d 'where to run'
complete -c gpux -n "__fish_seen_subcommand_from build run verify bench push pull ps list images devices version inspect tune" -l json -d 'JSON output'
complete -c gpux -n "__fish_seen_subcommand_from run serve inspect tag rm push tune" -x -a '(__gpux_images)'
complete -c gpux -n "__fish_seen_subcommand_from run" -s i -l input -r -F -d 'an input value or @FILE'
complete -c gpux -n "__fish_seen_subcommand_from run" -l repeat -x -d 'run N times, print latency'
complete -c gpux -n "__fish_seen_subcommand_from run" -l interactive -d 'one input per line'
complete -c gpux -n "__fish_seen_subcommand_from run serve" -l allow-handler -d 'run a pulled image\'s handler code'
complete -c gpux -n "__fish_seen_subcommand_from run" -l full -d 'every value of every output'
complete -c gpux -n "__fish_seen_subcommand_from run" -s o -l output -r -F -d 'write the answer to FILE.json, .npy or .png (a map, or boxes drawn)'
complete -c gpux -n "__fish_seen_subcommand_from run" -l json-input -r -F -d 'the JSON request /predict takes'
complete -c gpux -n "__fish_seen_subcommand_from run" -l batch -d 'each value is one item of a batch'
complete -c gpux -n "__fish_seen_subcommand_from build" -l no-smoke -d 'skip the smoke run'
complete -c gpux -n "__fish_seen_subcommand_from build" -l tune -d 'tune GEMMs for this GPU'
complete -c gpux -n "__fish_seen_subcommand_from build" -l no-tune -d 'no tuning'
complete -c gpux -n "__fish_seen_subcommand_from build tune" -l tune-time -x -d 'tuning time budget (seconds)'
complete -c gpux -n "__fish_seen_subcommand_from build" -s t -l tag -x -d 'image name'
complete -c gpux -n "__fish_seen_subcommand_from build push pull tune" -s q -l quiet -d 'no progress lines'
complete -c gpux -n "__fish_seen_subcommand_from build verify bench init" -a '(__fish_complete_directories)'
complete -c gpux -n "__fish_seen_subcommand_from serve" -l port -x -d 'port'
complete -c gpux -n "__fish_seen_subcommand_from serve" -l host -x -d 'address to bind'
complete -c gpux -n "__fish_seen_subcommand_from serve" -s d -l detach -d 'run in the background'
complete -c gpux -n "__fish_seen_subcommand_from serve" -l name -x -d 'server name'
complete -c gpux -n "__fish_seen_subcommand_from serve" -l max-batch-size -x
complete -c gpux -n "__fish_seen_subcommand_from serve" -l max-queue-delay-ms -x
complete -c gpux -n "__fish_seen_subcommand_from serve" -l max-queue -x
complete -c gpux -n "__fish_seen_subcommand_from serve stop verify" -l timeout -x -d 'seconds'
complete -c gpux -n "__fish_seen_subcommand_from serve" -l max-body -x
complete -c gpux -n "__fish_seen_subcommand_from serve bench" -l threads -x
complete -c gpux -n "__fish_seen_subcommand_from logs stop" -x -a '(__gpux_servers)'
complete -c gpux -n "__fish_seen_subcommand_from logs" -s f -l follow -d 'keep printing new lines'
complete -c gpux -n "__fish_seen_subcommand_from logs" -s n -l tail -x -d 'only the last N lines'
complete -c gpux -n "__fish_seen_subcommand_from init" -l template -x -a 'blank image-classification text-classification ocr audio'
complete -c gpux -n "__fish_seen_subcommand_from push pull login" -l insecure -d 'allow plain HTTP'
complete -c gpux -n "__fish_seen_subcommand_from push pull login" -s u -l username -x -d 'user'
complete -c gpux -n "__fish_seen_subcommand_from push pull login" -l password-stdin -d 'read the password from stdin'
complete -c gpux -n "__fish_seen_subcommand_from push" -l chunk-size -x -d 'bytes'
complete -c gpux -n "__fish_seen_subcommand_from push pull" -l limit-rate -x -d 'bytes per second'
complete -c gpux -n "__fish_seen_subcommand_from run verify bench" -l precision -x -a 'fp32 fp16' -d 'float precision'
complete -c gpux -n "__fish_seen_subcommand_from verify" -l atol-scale -x
complete -c gpux -n "__fish_seen_subcommand_from verify" -l l2 -x -d 'relative L2 tolerance'
complete -c gpux -n "__fish_seen_subcommand_from verify" -l top1 -d 'argmax must agree'
complete -c gpux -n "__fish_seen_subcommand_from verify" -l rtol -x
complete -c gpux -n "__fish_seen_subcommand_from verify" -l atol -x
complete -c gpux -n "__fish_seen_subcommand_from verify" -l jobs -x
complete -c gpux -n "__fish_seen_subcommand_from verify" -l no-fallback -d 'skip cases that need the CPU'
complete -c gpux -n "__fish_seen_subcommand_from bench" -l runs -x
complete -c gpux -n "__fish_seen_subcommand_from bench" -l warmup -x
complete -c gpux -n "__fish_seen_subcommand_from bench" -l min-time -x
complete -c gpux -n "__fish_seen_subcommand_from bench" -l profile
complete -c gpux -n "__fish_seen_subcommand_from list images ps" -s q -l quiet -d 'names or digests only'
complete -c gpux -n "__fish_seen_subcommand_from list images ps" -l format -x -a 'json table' -d 'output format or template'
complete -c gpux -n "__fish_seen_subcommand_from rm" -s f -l force -d 'a missing image is not an error'
complete -c gpux -n "__fish_seen_subcommand_from ps" -s a -l all -d 'also servers that are gone'
complete -c gpux -n "__fish_seen_subcommand_from run" -l max-new-tokens -r -d 'generation: most new tokens'
complete -c gpux -n "__fish_seen_subcommand_from run" -l temperature -r -d 'generation: 0 = greedy'
complete -c gpux -n "__fish_seen_subcommand_from run" -l top-k -r -d 'generation: sample among the K likeliest'
complete -c gpux -n "__fish_seen_subcommand_from run" -l top-p -r -d 'generation: nucleus mass'
complete -c gpux -n "__fish_seen_subcommand_from run" -l seed -r -d 'generation: sampler seed'
complete -c gpux -n "__fish_seen_subcommand_from run" -l repetition-penalty -r -d 'generation: > 1 discourages repeats'
