"""Cold-start SFT: the SFT chats as trajectories (`data`) and the stage loop (`driver`)."""
