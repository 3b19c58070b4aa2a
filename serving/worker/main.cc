#include "serving/worker/worker_main.h"

int main(int argc, char** argv) { return atrium::worker::WorkerMain(argc, argv); }
