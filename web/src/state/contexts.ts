/** React contexts: the signed-in user and the live state (event feed and server health). */
import { createContext } from "react";
import type { HealthAnswer } from "../api/client";
import type { Me } from "../api/types";
import { EventFeed, type FeedState } from "./eventFeed";

export interface AuthValue {
  user: Me;
  signOut: () => Promise<void>;
}

export const AuthContext = createContext<AuthValue | null>(null);

export interface HealthState {
  health: HealthAnswer | null;
  /** Epoch ms of the last /health answer. */
  checkedAt: number | null;
}

export interface LiveValue {
  feed: EventFeed;
  feedState: FeedState;
  health: HealthState;
  recheckHealth: () => void;
}

const idleFeed = new EventFeed();

export const LiveContext = createContext<LiveValue>({
  feed: idleFeed,
  feedState: idleFeed.state,
  health: { health: null, checkedAt: null },
  recheckHealth: () => undefined,
});
