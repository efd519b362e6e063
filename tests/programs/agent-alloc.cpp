// A C++ program with no proflab code, for the agent's tests: threads
// allocate with new and std::vector, keep part of it, then wait so a heap
// snapshot can be taken. Built -O2 -fomit-frame-pointer.
// Usage: agent-alloc [THREADS=4] [HOLD_SECONDS=3]; prints "ready" once
// everything is allocated, exits 0 after HOLD_SECONDS.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

struct Node {
  int values[60];
  Node *next;
};

// Keeps a list of Nodes made with new: 256 bytes each.
__attribute__((noinline)) static Node *agent_test_make_nodes(int n) {
  Node *head = nullptr;
  for (int i = 0; i < n; i++) {
    Node *x = new Node();
    x->values[0] = i;
    x->next = head;
    head = x;
  }
  return head;
}

// Grows vectors (operator new under std::allocator) and keeps them.
__attribute__((noinline)) static std::vector<std::vector<long>> *agent_test_fill_vectors(int n) {
  auto *all = new std::vector<std::vector<long>>();
  for (int i = 0; i < n; i++) {
    std::vector<long> v;
    for (int k = 0; k < 1000; k++) v.push_back(k * i);
    all->push_back(std::move(v));
  }
  return all;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 4;
  int hold = argc > 2 ? std::atoi(argv[2]) : 3;
  std::vector<Node *> lists(threads);
  std::vector<std::vector<std::vector<long>> *> vecs(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++)
    ts.emplace_back([t, &lists, &vecs] {
      lists[t] = agent_test_make_nodes(4000);
      vecs[t] = agent_test_fill_vectors(200);
    });
  for (auto &t : ts) t.join();
  long sum = 0;
  for (int t = 0; t < threads; t++) sum += lists[t]->values[0] + (long)(*vecs[t])[199][999];
  std::printf("ready %ld\n", sum);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(hold));
  return 0;
}
