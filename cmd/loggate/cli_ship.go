package main

func shipCommand() *command { return &command{name: "ship"} }
