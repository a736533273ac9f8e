package main

func completionCommand() *command { return &command{name: "completion"} }
