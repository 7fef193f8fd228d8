"""Online RL with verifiable rewards for `kind: rl` training stages (GRPO groups, KL to a
frozen reference) and SCoRe's two-stage self-correction recipe; see vloom.rl.step."""
