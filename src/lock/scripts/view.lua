-- One lock as `view` reads it (view_fn.lua, prepended).
-- KEYS: 1 lock, 2 holder details, 3 fencing counter, 4 stored limit, 5 history, 6 shared
-- holders, 7 their details.
return view(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
