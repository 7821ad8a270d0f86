// The chat example's server with real clients on loopback: ordered delivery to every member,
// nicknames, departures, history, limits, and a hundred members talking at once.
#define BOOST_TEST_MODULE chat
#include <atomic>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>
#include <future>
#include <map>
#include <memory>
#include <thread>

#include "chat_peer.hpp"

using chat::test::ChatServer;
using chat::test::generous;
using chat::test::Member;
using chat::test::Received;
namespace v1 = chat::v1;

namespace {

std::vector<std::string> texts_of(const std::vector<v1::MessageSaid>& said) {
  std::vector<std::string> texts;
  for (const auto& message : said) texts.push_back(message.nickname() + ":" + message.text());
  return texts;
}

// Sequences 1..n without a gap, as every member of a room must see them.
bool sequences_complete(const std::vector<v1::MessageSaid>& said, std::size_t n) {
  if (said.size() != n) return false;
  for (std::size_t index = 0; index < n; ++index) {
    if (said[index].sequence() != index + 1) return false;
  }
  return true;
}

template <class Response, class Request>
std::string refusal(Member& member, const Request& request) {
  Response response;
  std::string reason;
  const auto error = member.call(request, response, &reason);
  BOOST_TEST(error == msgframe::error::bad_payload);
  return reason;
}

}  // namespace

BOOST_AUTO_TEST_CASE(three_members_see_every_message_once_in_the_same_order) {
  ChatServer server;
  Member alice(server.port()), bob(server.port()), carol(server.port());
  alice.join("alice", "lobby");
  bob.join("bob", "lobby");
  const auto joined = carol.join("carol", "#lobby");  // with or without the '#'
  BOOST_TEST(joined.room() == "lobby");
  BOOST_TEST((std::vector<std::string>(joined.members().begin(), joined.members().end()) ==
              std::vector<std::string>{"alice", "bob", "carol"}));

  // Each talks from a thread of its own, all at once (checked here: Boost.Test asserts from the
  // main thread only).
  constexpr int per_member = 30;
  std::atomic<int> failed_says{0};
  std::vector<std::thread> talkers;
  for (auto* member : {&alice, &bob, &carol}) {
    talkers.emplace_back([member, &failed_says] {
      for (int index = 0; index < per_member; ++index) {
        v1::SayRequest request;
        request.set_text("line " + std::to_string(index));
        v1::SayResponse response;
        if (member->call(request, response)) ++failed_says;
      }
    });
  }
  for (auto& talker : talkers) talker.join();
  BOOST_TEST(failed_says == 0);

  constexpr std::size_t total = 3 * per_member;
  for (auto* member : {&alice, &bob, &carol}) {
    BOOST_TEST_REQUIRE(
        member->wait_until([](const Received& received) { return received.said.size() >= total; }));
  }
  const auto order = texts_of(alice.received().said);
  for (auto* member : {&alice, &bob, &carol}) {
    const auto said = member->received().said;
    BOOST_TEST(sequences_complete(said, total));  // exactly once each, no gap
    BOOST_TEST(texts_of(said) == order);          // the same order for all
  }
  // Each member's own lines keep the order they were said in.
  std::map<std::string, int> next_line;
  for (const auto& message : alice.received().said) {
    BOOST_TEST(message.text() == "line " + std::to_string(next_line[message.nickname()]++));
  }
  // The join notices: alice saw bob and carol arrive, bob saw carol, carol saw nobody.
  BOOST_TEST(alice.received().joined.size() == 2u);
  BOOST_TEST(bob.received().joined.size() == 1u);
  BOOST_TEST(carol.received().joined.empty());
}

BOOST_AUTO_TEST_CASE(a_taken_nickname_is_refused_with_a_clear_error) {
  ChatServer server;
  Member alice(server.port()), impostor(server.port());
  alice.join("alice", "lobby");
  v1::JoinRequest request;
  request.set_nickname("alice");
  request.set_room("elsewhere");
  const auto reason = refusal<v1::JoinResponse>(impostor, request);
  BOOST_TEST(reason.find("\"alice\" is taken") != std::string::npos, reason);

  // Renaming onto a taken name is refused too; a free one works and the room hears of it.
  Member bob(server.port());
  bob.join("bob", "lobby");
  v1::NickRequest rename;
  rename.set_nickname("alice");
  BOOST_TEST(refusal<v1::NickResponse>(bob, rename).find("taken") != std::string::npos);
  rename.set_nickname("robert");
  v1::NickResponse renamed;
  BOOST_TEST_REQUIRE(!bob.call(rename, renamed));
  BOOST_TEST_REQUIRE(alice.wait_until([](const Received& r) { return !r.renamed.empty(); }));
  BOOST_TEST(alice.received().renamed.front().new_nickname() == "robert");

  // Once alice leaves, her name is free.
  v1::LeaveResponse left;
  BOOST_TEST_REQUIRE(!alice.call(v1::LeaveRequest{}, left));
  BOOST_TEST(impostor.join("alice", "elsewhere").nickname() == "alice");
}

BOOST_AUTO_TEST_CASE(a_member_whose_connection_dies_is_removed_and_announced) {
  ChatServer server;
  Member alice(server.port());
  alice.join("alice", "lobby");
  auto bob = std::make_unique<Member>(server.port());
  bob->join("bob", "lobby");
  bob.reset();  // the connection closes without a Leave

  BOOST_TEST_REQUIRE(alice.wait_until([](const Received& r) { return !r.left.empty(); }));
  const auto left = alice.received().left.front();
  BOOST_TEST(left.nickname() == "bob");
  BOOST_TEST(left.room() == "lobby");
  BOOST_TEST(left.reason() == "connection lost");
  v1::WhoResponse who;
  BOOST_TEST_REQUIRE(!alice.call(v1::WhoRequest{}, who));
  BOOST_TEST(std::vector<std::string>(who.members().begin(), who.members().end()) ==
             std::vector<std::string>{"alice"});
  Member new_bob(server.port());
  BOOST_TEST(new_bob.join("bob", "lobby").nickname() == "bob");  // the name is free again
}

BOOST_AUTO_TEST_CASE(a_joiner_gets_the_last_fifty_messages) {
  ChatServer server;
  Member alice(server.port());
  alice.join("alice", "lobby");
  for (int index = 1; index <= 60; ++index) alice.say("message " + std::to_string(index));

  Member bob(server.port());
  const auto joined = bob.join("bob", "lobby");
  BOOST_TEST_REQUIRE(joined.history_size() == 50);
  for (int index = 0; index < 50; ++index) {
    BOOST_TEST(joined.history(index).sequence() == static_cast<std::uint64_t>(index + 11));
    BOOST_TEST(joined.history(index).text() == "message " + std::to_string(index + 11));
  }
  // What is said next continues the sequence, for the newcomer too.
  BOOST_TEST(alice.say("after") == 61u);
  BOOST_TEST_REQUIRE(bob.wait_until([](const Received& r) { return !r.said.empty(); }));
  BOOST_TEST(bob.received().said.front().sequence() == 61u);
  BOOST_TEST(bob.received().said.size() == 1u);  // nothing from before came twice
}

BOOST_AUTO_TEST_CASE(oversized_and_malformed_input_is_refused_and_the_member_stays) {
  ChatServer server;
  Member alice(server.port()), bob(server.port());
  alice.join("alice", "lobby");
  bob.join("bob", "lobby");

  v1::SayRequest request;
  request.set_text(std::string(chat::max_text_bytes + 1, 'x'));
  const auto reason = refusal<v1::SayResponse>(alice, request);
  BOOST_TEST(reason.find("4097 bytes; at most 4096") != std::string::npos, reason);
  request.set_text("");
  BOOST_TEST(refusal<v1::SayResponse>(alice, request).find("empty") != std::string::npos);
  // Invalid UTF-8 never reaches the room (protobuf itself refuses such a string field).
  request.set_text(std::string("bad \xff byte"));
  refusal<v1::SayResponse>(alice, request);

  v1::JoinRequest bad_name;
  bad_name.set_room("lobby");
  for (const std::string& nickname :
       std::vector<std::string>{"", "has space", std::string(33, 'n'), "#hash", "tab\t"}) {
    bad_name.set_nickname(nickname);
    refusal<v1::JoinResponse>(bob, bad_name);
  }

  // At the limit it is said, and only what was accepted reached bob.
  BOOST_TEST(alice.say(std::string(chat::max_text_bytes, 'y')) == 1u);
  BOOST_TEST_REQUIRE(bob.wait_until([](const Received& r) { return !r.said.empty(); }));
  BOOST_TEST(bob.received().said.size() == 1u);
  BOOST_TEST(bob.received().said.front().text().size() == chat::max_text_bytes);

  // Talking before joining, or leaving twice, is refused too.
  Member stranger(server.port());
  request.set_text("hello?");
  BOOST_TEST(refusal<v1::SayResponse>(stranger, request).find("join") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(members_in_other_rooms_hear_nothing_and_moving_is_announced) {
  ChatServer server;
  Member alice(server.port()), bob(server.port());
  alice.join("alice", "lobby");
  bob.join("bob", "kitchen");
  alice.say("lobby only");
  bob.join("bob", "lobby");  // moves
  BOOST_TEST_REQUIRE(alice.wait_until([](const Received& r) { return !r.joined.empty(); }));
  BOOST_TEST(alice.received().joined.front().nickname() == "bob");
  const auto bob_saw = bob.received();
  BOOST_TEST(bob_saw.said.empty());  // said in the lobby before he came

  Member carol(server.port());
  carol.join("carol", "kitchen");
  bob.join("bob", "kitchen");  // and back: the lobby hears why he left
  BOOST_TEST_REQUIRE(alice.wait_until([](const Received& r) { return !r.left.empty(); }));
  BOOST_TEST(alice.received().left.front().reason() == "moved to #kitchen");
}

BOOST_AUTO_TEST_CASE(the_shutdown_notice_reaches_every_member) {
  ChatServer server;
  Member alice(server.port()), bob(server.port());
  alice.join("alice", "lobby");
  bob.join("bob", "kitchen");
  server.service().announce_shutdown("going down for maintenance");
  for (auto* member : {&alice, &bob}) {
    BOOST_TEST_REQUIRE(member->wait_until([](const Received& r) { return !r.shutdowns.empty(); }));
    BOOST_TEST(member->received().shutdowns.front().reason() == "going down for maintenance");
  }
}

BOOST_AUTO_TEST_CASE(a_hundred_members_twenty_messages_each_no_loss_no_reordering) {
  ChatServer server;
  constexpr int members = 100;
  constexpr int per_member = 20;
  std::vector<std::unique_ptr<Member>> room;
  for (int index = 0; index < members; ++index) {
    room.push_back(std::make_unique<Member>(server.port()));
    // Not "m" + std::to_string(index): g++ 12 misreads that as an overlapping copy (-Wrestrict).
    std::string name = std::to_string(index);
    name.insert(0, 1, 'm');
    room.back()->join(name, "crowd");
  }
  // Everyone pipelines their twenty lines at once.
  std::vector<std::future<v1::SayResponse>> replies;
  for (int line = 0; line < per_member; ++line) {
    for (int index = 0; index < members; ++index) {
      v1::SayRequest request;
      request.set_text(std::to_string(line));
      replies.push_back(
          room[index]->client().async_call<v1::SayResponse>(request, boost::asio::use_future));
    }
  }
  for (auto& reply : replies) reply.get();

  constexpr std::size_t total = members * per_member;
  const auto order = [&] {
    BOOST_TEST_REQUIRE(
        room.front()->wait_until([](const Received& r) { return r.said.size() >= total; }));
    return texts_of(room.front()->received().said);
  }();
  for (auto& member : room) {
    BOOST_TEST_REQUIRE(
        member->wait_until([](const Received& r) { return r.said.size() >= total; }));
    const auto said = member->received().said;
    BOOST_TEST_REQUIRE(sequences_complete(said, total));
    BOOST_TEST_REQUIRE((texts_of(said) == order));
  }
  std::map<std::string, int> next_line;  // each member's lines in the order they were sent
  for (const auto& text : order) {
    const auto colon = text.find(':');
    BOOST_TEST_REQUIRE(text.substr(colon + 1) ==
                       std::to_string(next_line[text.substr(0, colon)]++));
  }
}
