"""The learned engine as a UCI engine: `continuous-play uci --checkpoint FILE`
(or `python -m service.uci --checkpoint FILE`), for any chess GUI, cutechess or lichess-bot.

- `protocol`: the commands, the options, `go` and its parameters, the printed forms;
- `search`: the search thread: the network's load, one search per `go` with its time
  management and its `info` lines, tree reuse between moves;
- `engine`: `UciEngine`, the command loop over the input and output streams;
- `entry`: `main` (behind `continuous-play uci`) and `cli` (`python -m service.uci`).
"""
