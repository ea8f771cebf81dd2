
-- cronnode: raise the fence (fence.lua, in front of this, did it): answer {1, token}, or
-- {0, fence} when the fence is above the token.
return {1, token}
